"""Where a first scan's verification CPU goes, by the kind of candidate pair.

``python -m bench.verify_cost --state DIR [--sample 6000] [--labels LABELS.json --split tune]``
prints four tables.

A scan keeps every verdict, rejected ones too (``daemon/found_pairs.py``). This takes a random
sample of a scanned state's pairs and scores each again in this one process, through the real
``pairing.score_pair``, timing its stages: the keypoint fit (``from_keypoints``), ECC alignment
(``alignment.refine``), comparison of aligned pictures (``comparison.overlap``, ``layout`` and ``structure``) and the template
search (``from_template``). A pair's *kind* is what relates it and how far it went:

- ``keypoints`` when the keypoint fit finds a relation, else ``hash`` (proposed by the hash, or
  by shared descriptors that agree on no geometry);
- ``settled unaligned`` when nothing was aligned (no evidence, a layout that disagrees at first
  sight, flat pictures), ``aligned`` when it was, ``template search`` when a template search
  was made too;
- its verdict again: verified (0.6 or more) or rejected.

The second table puts the same pairs by their pictures and the bits between their hashes
(nearest orientation): both flat (``verdict.is_flat``), both textured (``pairing.textured``: each
filled its keypoint quota), or smooth (any other pair: at least one picture has few keypoints);
then 0 to 4 bits, 5 to 8, 9 to 12 (the hash's radius), 13 to 20 (the evidence reach,
``pairing.EVIDENCE_HASH_DISTANCE``) or more. How many of each verify says what the CPU a kind
costs buys: a library and the labelled set can spend alike on one kind and find copies in only
one of them.

The third table puts the ECC fits inside the alignment by what each is (``ecc_fit_name``):
the affine fit at half size, its short pass at full size, the rotation-only refit at full size
(``alignment.refine``'s fallback) and the perspective fit (``alignment.bend``); how many, their
CPU each and their share of the sample's CPU. ECC is most of the alignment, and which fit
costs what says where a cheaper alignment would have to start.

The fourth table is how many pairs within the hash's radius (``candidates.HASH_RADIUS``) each
picture is in: the hash's share of the candidates, and its growth with a library's density.

``--labels``/``--split``: only pairs of two pictures of that split of the labelled set (as
``bench.rescore`` takes them), never the report split while anything is being tuned.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench.rescore import pairs_of_split
from bench.stored_state import open_read_only, pair_features
from dupe_scanner.analysis import pairing
from dupe_scanner.analysis.candidates import HASH_RADIUS
from dupe_scanner.analysis.features import PREFIX_BYTES, Features
from dupe_scanner.analysis.verify import alignment, comparison, hash_distance, is_flat

STAGES = ("keypoint fit", "alignment", "comparison", "template search")
# Upper ends (bits) of the hash distances the second table is cut by: alike, near, the hash's
# radius, the evidence reach; anything further is "> 20".
DISTANCE_BUCKETS = (4, 8, HASH_RADIUS, pairing.EVIDENCE_HASH_DISTANCE)


@dataclass
class Kind:
    pairs: int = 0
    cpu: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    verified: int = 0


# Pairs by (related by, path, verdict), and by (pictures, hash distance bucket).
Kinds = dict[tuple[str, str, str], Kind]
ByDistance = dict[tuple[str, int], Kind]


@dataclass
class Fits:
    calls: int = 0
    cpu: float = 0.0


# ECC fits by name (``ecc_fit_name``).
EccFits = dict[str, Fits]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="a scanned state folder (holding state.db)")
    parser.add_argument("--sample", type=int, default=6000, help="stored pairs to score again (default 6000)")
    parser.add_argument("--labels", type=Path, help="the labelled set's labels.json, to take one split's pairs only")
    parser.add_argument("--split", help="with --labels: the split whose pairs are scored (tune or report)")
    options = parser.parse_args()
    if (options.labels is None) != (options.split is None):
        parser.error("--labels and --split go together")
    connection = open_read_only(options.state)
    if connection is None:
        return 2
    with connection:
        pairs = connection.execute("SELECT first, second FROM pairs").fetchall()
        if options.labels is not None:
            pairs = pairs_of_split(connection, pairs, options.labels, options.split)
        sample = random.Random(7).sample(pairs, min(options.sample, len(pairs)))
        with _timed_ecc_fits() as ecc_fits:
            kinds, by_distance = score_again(connection, sample)
        hash_pairs = pairs_within_radius(connection, pairs)
    print(f"{len(sample)} of the state's {len(pairs)} stored pairs scored again in one process")
    print_kinds(kinds)
    print()
    print_by_distance(by_distance)
    print()
    print_ecc_fits(ecc_fits, sum(kind.cpu for kind in kinds.values()))
    print()
    print_hash_pairs(hash_pairs, len(pairs))
    return 0


def score_again(connection: sqlite3.Connection, sample: list[tuple[str, str]]) -> tuple[Kinds, ByDistance]:
    """The sample's CPU by kind (what relates each pair, how far it went, its verdict), and by
    its pictures and hash distance (``pictures_of``, ``distance_bucket``)."""
    kinds: Kinds = defaultdict(Kind)
    by_distance: ByDistance = defaultdict(Kind)
    with _timed_stages() as spent:
        for _, _, a, b in pair_features(connection, sample):
            spent.clear()
            start = time.process_time()
            verdict = pairing.score_pair(a, b, None)
            cpu = time.process_time() - start
            stages = dict(spent)  # before _kind_of fits keypoints again
            for kind in (kinds[_kind_of(a, b, stages, verdict.verified)], by_distance[(pictures_of(a, b), distance_bucket(hash_distance(a, b)))]):
                kind.pairs += 1
                kind.cpu += cpu
                kind.verified += verdict.verified
                for stage in STAGES:
                    kind.stages[stage] += stages.get(stage, 0.0)
    return kinds, by_distance


def pictures_of(a: Features, b: Features) -> str:
    """``flat`` when both pictures are, ``textured`` when both are, else ``smooth``."""
    if is_flat(a) and is_flat(b):
        return "flat"
    if pairing.textured(a) and pairing.textured(b):
        return "textured"
    return "smooth"


def distance_bucket(bits: int) -> int:
    """The index in ``DISTANCE_BUCKETS`` of the first upper end ``bits`` is within; past the last, its length."""
    return next((index for index, end in enumerate(DISTANCE_BUCKETS) if bits <= end), len(DISTANCE_BUCKETS))


def bucket_name(index: int) -> str:
    if index == len(DISTANCE_BUCKETS):
        return f"> {DISTANCE_BUCKETS[-1]}"
    start = 0 if index == 0 else DISTANCE_BUCKETS[index - 1] + 1
    return f"{start}-{DISTANCE_BUCKETS[index]}"


def _kind_of(a, b, spent: dict[str, float], verified: bool) -> tuple[str, str, str]:
    related = "keypoints" if pairing.from_keypoints(a, b) is not None else "hash"  # not timed: after the scoring
    if "template search" in spent:
        path = "template search"
    elif "alignment" in spent:
        path = "aligned"
    else:
        path = "settled unaligned"
    return related, path, "verified" if verified else "rejected"


@contextmanager
def _timed_stages() -> Iterator[dict[str, float]]:
    """CPU seconds spent in each stage while inside, summed since the dict was last cleared."""
    spent: dict[str, float] = {}
    places = [
        ("keypoint fit", pairing, "from_keypoints"),
        ("alignment", alignment, "refine"),
        ("comparison", comparison, "overlap"),
        ("comparison", comparison, "layout"),
        ("comparison", comparison, "structure"),
        ("template search", pairing, "from_template"),
    ]
    originals = [getattr(module, name) for _, module, name in places]

    def timed(stage: str, function):
        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[stage] = spent.get(stage, 0.0) + time.process_time() - start

        return wrapper

    for (stage, module, name), original in zip(places, originals, strict=True):
        setattr(module, name, timed(stage, original))
    try:
        yield spent
    finally:
        for (_, module, name), original in zip(places, originals, strict=True):
            setattr(module, name, original)


def ecc_fit_name(motion: int, passes: int) -> str:
    """What one ``cv2.findTransformECC`` call of the alignment is, told by its motion and its
    most passes (each fit in ``alignment`` asks for its own)."""
    names = {
        (cv2.MOTION_AFFINE, alignment.ECC_ITERATIONS): "affine fit, half size",
        (cv2.MOTION_AFFINE, alignment.ECC_FINE_ITERATIONS): "affine fit, short pass at full size",
        (cv2.MOTION_EUCLIDEAN, alignment.ECC_ITERATIONS): "rotation-only refit, full size",
        (cv2.MOTION_HOMOGRAPHY, alignment.BEND_ITERATIONS): "perspective fit (bend)",
    }
    return names.get((motion, passes), f"motion {motion}, {passes} passes")


@contextmanager
def _timed_ecc_fits() -> Iterator[EccFits]:
    """Every ECC fit made while inside, by ``ecc_fit_name``: how many, and their CPU seconds."""
    fits: EccFits = defaultdict(Fits)
    original = cv2.findTransformECC

    def timed(template, image, warp, motion, criteria, *rest):
        start = time.process_time()
        try:
            return original(template, image, warp, motion, criteria, *rest)
        finally:
            fit = fits[ecc_fit_name(motion, criteria[1])]
            fit.calls += 1
            fit.cpu += time.process_time() - start

    setattr(cv2, "findTransformECC", timed)  # noqa: B010  # OpenCV's stubs type it as overloaded
    try:
        yield fits
    finally:
        setattr(cv2, "findTransformECC", original)  # noqa: B010


def pairs_within_radius(connection: sqlite3.Connection, pairs: list[tuple[str, str]]) -> np.ndarray:
    """How many stored pairs within ``HASH_RADIUS`` bits (nearest orientation) each picture is in."""
    hashes = {
        key: np.frombuffer(prefix[PREFIX_BYTES - 64 : PREFIX_BYTES], dtype="<u8")
        for key, prefix in connection.execute("SELECT hash, prefix FROM feature_hashes")
    }
    count: dict[str, int] = defaultdict(int)
    for first, second in pairs:
        if first in hashes and second in hashes and int(np.bitwise_count(hashes[first] ^ hashes[second][0]).min()) <= HASH_RADIUS:
            count[first] += 1
            count[second] += 1
    return np.array(sorted(count.values()), dtype=np.int64)


def print_kinds(kinds: Kinds) -> None:
    pairs = sum(kind.pairs for kind in kinds.values())
    cpu = sum(kind.cpu for kind in kinds.values())
    stage_heads = " ".join(f"{stage:>15}" for stage in STAGES)
    print(f"{'related by':<10} {'path':<18} {'verdict':<9} {'pairs':>6} {'of pairs':>9} {'of CPU':>7} {'ms a pair':>10}  {stage_heads}")
    for (related, path, verdict), kind in sorted(kinds.items(), key=lambda item: -item[1].cpu):
        shares = " ".join(f"{kind.stages[stage] / cpu:>15.1%}" for stage in STAGES)
        each = 1000 * kind.cpu / kind.pairs
        print(f"{related:<10} {path:<18} {verdict:<9} {kind.pairs:>6} {kind.pairs / pairs:>9.1%} {kind.cpu / cpu:>7.1%} {each:>10.1f}  {shares}")
    stages = " ".join(f"{sum(k.stages[stage] for k in kinds.values()) / cpu:>15.1%}" for stage in STAGES)
    print(f"{'all':<10} {'':<18} {'':<9} {pairs:>6} {1:>9.1%} {1:>7.1%} {1000 * cpu / pairs:>10.1f}  {stages}")
    print("(stage columns: share of all the sample's CPU; a pair's keypoint fit may run twice, once from each side)")


def print_by_distance(by_distance: ByDistance) -> None:
    pairs = sum(kind.pairs for kind in by_distance.values())
    cpu = sum(kind.cpu for kind in by_distance.values())
    print(f"{'pictures':<9} {'hash bits':>9} {'pairs':>6} {'of pairs':>9} {'verified':>9} {'of them':>8} {'of CPU':>7} {'ms a pair':>10}")
    for (pictures, bucket), kind in sorted(by_distance.items()):
        print(
            f"{pictures:<9} {bucket_name(bucket):>9} {kind.pairs:>6} {kind.pairs / pairs:>9.1%} {kind.verified:>9} "
            f"{kind.verified / kind.pairs:>8.1%} {kind.cpu / cpu:>7.1%} {1000 * kind.cpu / kind.pairs:>10.1f}"
        )
    print("(hash bits: between B's hash and the nearest orientation of A's; smooth: at least one of the two has few keypoints)")


def print_ecc_fits(fits: EccFits, sample_cpu: float) -> None:
    print(f"{'ECC fit':<36} {'calls':>7} {'ms a call':>10} {'of CPU':>7}")
    for name, fit in sorted(fits.items(), key=lambda item: -item[1].cpu):
        print(f"{name:<36} {fit.calls:>7} {1000 * fit.cpu / max(fit.calls, 1):>10.2f} {fit.cpu / max(sample_cpu, 1e-9):>7.1%}")
    print("(of CPU: share of all the sample's scoring CPU; every fit is inside the first table's alignment column)")


def print_hash_pairs(counts: np.ndarray, stored: int) -> None:
    within = int(counts.sum()) // 2
    print(f"stored pairs within {HASH_RADIUS} bits of hash: {within} of {stored} ({within / max(stored, 1):.0%}), in {len(counts)} pictures")
    if len(counts):
        p50, p90, p99 = np.quantile(counts, [0.5, 0.9, 0.99])
        print(f"such pairs a picture is in: median {p50:.0f}, 90th percentile {p90:.0f}, 99th {p99:.0f}, most {counts.max()}")


if __name__ == "__main__":
    sys.exit(main())
