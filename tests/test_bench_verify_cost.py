"""bench.verify_cost: the second table's hash-distance rows, cut where the scan's own limits lie."""

from __future__ import annotations

from bench.verify_cost import Kind, bucket_name, distance_bucket, print_by_distance
from dupe_scanner.analysis.candidates import HASH_RADIUS
from dupe_scanner.analysis.pairing import EVIDENCE_HASH_DISTANCE


def test_distances_are_cut_at_the_hash_radius_and_the_evidence_reach():
    names = [bucket_name(distance_bucket(bits)) for bits in (0, 4, 5, HASH_RADIUS, HASH_RADIUS + 1, EVIDENCE_HASH_DISTANCE, 64)]

    assert names == ["0-4", "0-4", "5-8", f"9-{HASH_RADIUS}", f"{HASH_RADIUS + 1}-{EVIDENCE_HASH_DISTANCE}",
                     f"{HASH_RADIUS + 1}-{EVIDENCE_HASH_DISTANCE}", f"> {EVIDENCE_HASH_DISTANCE}"]


def test_each_row_says_how_many_of_its_pairs_verified_and_its_share_of_the_cpu(capsys):
    by_distance = {
        ("smooth", distance_bucket(10)): Kind(pairs=4, cpu=3.0, verified=1),
        ("flat", distance_bucket(0)): Kind(pairs=4, cpu=1.0, verified=4),
    }

    print_by_distance(by_distance)

    rows = capsys.readouterr().out.splitlines()
    assert rows[1].split() == ["flat", "0-4", "4", "50.0%", "4", "100.0%", "25.0%", "250.0"]
    assert rows[2].split() == ["smooth", f"9-{HASH_RADIUS}", "4", "50.0%", "1", "25.0%", "75.0%", "750.0"]
