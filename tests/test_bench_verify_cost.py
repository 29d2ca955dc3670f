"""bench.verify_cost: the second table's hash-distance rows, cut where the scan's own limits lie; the ECC fits told apart."""

from __future__ import annotations

import cv2
import numpy as np

from bench.verify_cost import Fits, Kind, _timed_ecc_fits, bucket_name, distance_bucket, ecc_fit_name, print_by_distance, print_ecc_fits
from dupe_scanner.analysis.candidates import HASH_RADIUS
from dupe_scanner.analysis.pairing import EVIDENCE_HASH_DISTANCE
from dupe_scanner.analysis.verify import alignment


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


def test_each_ecc_fit_of_the_alignment_has_its_own_name():
    names = {
        ecc_fit_name(cv2.MOTION_AFFINE, alignment.ECC_ITERATIONS),
        ecc_fit_name(cv2.MOTION_AFFINE, alignment.ECC_FINE_ITERATIONS),
        ecc_fit_name(cv2.MOTION_EUCLIDEAN, alignment.ECC_ITERATIONS),
        ecc_fit_name(cv2.MOTION_HOMOGRAPHY, alignment.BEND_ITERATIONS),
    }

    assert len(names) == 4
    assert ecc_fit_name(cv2.MOTION_TRANSLATION, 7) == f"motion {cv2.MOTION_TRANSLATION}, 7 passes"


def test_a_refinement_that_ends_no_similarity_shows_its_affine_fit_and_its_rotation_only_refit():
    rng = np.random.default_rng(3)
    picture = cv2.GaussianBlur(rng.integers(0, 255, (120, 160)).astype(np.uint8), (0, 0), 3)
    stranger = cv2.GaussianBlur(rng.integers(0, 255, (120, 160)).astype(np.uint8), (0, 0), 3)

    with _timed_ecc_fits() as fits:
        alignment.refine(picture, stranger, np.eye(2, 3, dtype=np.float32))

    assert fits["affine fit, half size"].calls == 1
    assert fits["rotation-only refit, full size"].calls == 1
    assert cv2.findTransformECC.__name__ == "findTransformECC"  # OpenCV's own again afterwards


def test_the_ecc_table_gives_each_fit_its_cost_a_call_and_its_share(capsys):
    print_ecc_fits({"affine fit, half size": Fits(calls=4, cpu=1.0), "rotation-only refit, full size": Fits(calls=2, cpu=2.0)}, sample_cpu=4.0)

    rows = capsys.readouterr().out.splitlines()
    assert rows[1].split()[-3:] == ["2", "1000.00", "50.0%"]
    assert rows[2].split()[-3:] == ["4", "250.00", "25.0%"]
