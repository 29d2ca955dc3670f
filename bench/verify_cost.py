"""Where a first scan's verification CPU goes, by the kind of candidate pair.

``python -m bench.verify_cost --state DIR [--sample 6000]`` prints two tables.

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

The second table is how many pairs within the hash's radius (``candidates.HASH_RADIUS``) each
picture is in: the hash's share of the candidates, and its growth with a library's density.
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

import numpy as np

from bench.stored_state import open_read_only, pair_features
from dupe_scanner.analysis import pairing
from dupe_scanner.analysis.candidates import HASH_RADIUS
from dupe_scanner.analysis.features import PREFIX_BYTES
from dupe_scanner.analysis.verify import alignment, comparison

STAGES = ("keypoint fit", "alignment", "comparison", "template search")


@dataclass
class Kind:
    pairs: int = 0
    cpu: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="a scanned state folder (holding state.db)")
    parser.add_argument("--sample", type=int, default=6000, help="stored pairs to score again (default 6000)")
    options = parser.parse_args()
    connection = open_read_only(options.state)
    if connection is None:
        return 2
    with connection:
        pairs = connection.execute("SELECT first, second FROM pairs").fetchall()
        sample = random.Random(7).sample(pairs, min(options.sample, len(pairs)))
        kinds = score_again(connection, sample)
        hash_pairs = pairs_within_radius(connection, pairs)
    print(f"{len(sample)} of the state's {len(pairs)} stored pairs scored again in one process")
    print_kinds(kinds)
    print()
    print_hash_pairs(hash_pairs, len(pairs))
    return 0


def score_again(connection: sqlite3.Connection, sample: list[tuple[str, str]]) -> dict[tuple[str, str, str], Kind]:
    kinds: dict[tuple[str, str, str], Kind] = defaultdict(Kind)
    with _timed_stages() as spent:
        for _, _, a, b in pair_features(connection, sample):
            spent.clear()
            start = time.process_time()
            verdict = pairing.score_pair(a, b, None)
            cpu = time.process_time() - start
            stages = dict(spent)  # before _kind_of fits keypoints again
            kind = kinds[_kind_of(a, b, stages, verdict.verified)]
            kind.pairs += 1
            kind.cpu += cpu
            for stage in STAGES:
                kind.stages[stage] += stages.get(stage, 0.0)
    return kinds


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


def print_kinds(kinds: dict[tuple[str, str, str], Kind]) -> None:
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


def print_hash_pairs(counts: np.ndarray, stored: int) -> None:
    within = int(counts.sum()) // 2
    print(f"stored pairs within {HASH_RADIUS} bits of hash: {within} of {stored} ({within / max(stored, 1):.0%}), in {len(counts)} pictures")
    if len(counts):
        p50, p90, p99 = np.quantile(counts, [0.5, 0.9, 0.99])
        print(f"such pairs a picture is in: median {p50:.0f}, 90th percentile {p90:.0f}, 99th {p99:.0f}, most {counts.max()}")


if __name__ == "__main__":
    sys.exit(main())
