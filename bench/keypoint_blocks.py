"""How many of a scanned library's keypoint candidates wait for evidence, and which verified pairs they hold back.

``python -m bench.keypoint_blocks --state DIR [--blocks 4,8,16,40] [--labels FILE [--split tune]] [--cpu-sample 6000]``
prints one table.

A query's keypoint candidates are asked ``KEYPOINT_BLOCK`` at a time, most votes first, in the
same numbered blocks as its far hash neighbours (``FAR_BLOCK``): its next block of either kind
only when its block before, of either kind, held a verified pair. For each block size given,
this runs the real hash and keypoint searches over the state (every picture against the older
ones, as a first scan asks; on copies of the kept keypoint files), cuts the candidates into
blocks (``WaitingCandidates``) and replays the asking on the state's stored verdicts: a pair
never compared counts as rejected. So read it on a state whose scan asked every keypoint
candidate (one scanned before they were held back, or with a block of ``MOST_PER_IMAGE``); its
far hash neighbours held back are then missing too, and a block they would now earn counts as
rejected: the figures lean towards holding back more, not less.

Columns: the keypoint candidates and how many are held back; the verified pairs among those
(``--labels``: one family's, a copy lost unless a group holds it through another pair, or two
families', a wrong pair not made; with the labelled set's ``labels.json``, also how many are
pairs its scores count, an original and its copy); the far hash neighbours asked that the hash's blocks alone
would not earn (earned through a keypoint pair). ``--cpu-sample N``: N of the state's stored
pairs scored again through the real ``score_pair`` in this process, and the share of their CPU
that went to the pairs held back.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.far_neighbours import _numbers, families, verified_pairs
from bench.stored_state import open_read_only, pair_features
from dupe_scanner.analysis import candidates, pairing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keypoint_blocks", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="the state folder of a scanned library")
    parser.add_argument("--blocks", default=f"4,8,16,{candidates.MOST_PER_IMAGE}", help="KEYPOINT_BLOCK values, comma-separated")
    parser.add_argument("--labels", type=Path, help="the pool's labels.jsonl or the labelled set's labels.json")
    parser.add_argument("--split", help="with the labelled set's labels: count only pairs of this split")
    parser.add_argument("--cpu-sample", type=int, default=0, help="stored pairs to score again for the held-back share of CPU (default none)")
    arguments = parser.parse_args(argv)
    connection = open_read_only(arguments.state)
    if connection is None:
        return 2
    keys, hashed, ranked, age = searched(arguments.state)
    verified = verified_pairs(connection, keys)
    family = families(connection, arguments.labels, arguments.split) if arguments.labels else None
    scored = scored_copies(connection, arguments.labels, arguments.split) if arguments.labels and arguments.labels.suffix == ".json" else None
    print(f"{len(keys)} contents, {len(hashed)} hash candidates, {len(ranked)} keypoint candidates, {len(verified)} verified pairs stored")
    cpu_of = scored_again(connection, arguments.cpu_sample)
    hash_alone = asked_rows(candidates.WaitingCandidates.of(hashed, len(keys), age), keys, verified)
    header = f"{'block':>5} {'keypoint':>9} {'held back':>9} {'share':>6} {'verified held':>13} {'one family':>10} {'two':>5}"
    print(f"{header} {'scored copies':>13} {'far hash earned':>15} {'of CPU':>7}")
    for block in _numbers(arguments.blocks):
        waiting = candidates.WaitingCandidates.of(hashed, len(keys), age, ranked=ranked, keypoint_block=block)
        asked = asked_rows(waiting, keys, verified)
        keypoint = waiting.rows[:, 2] == candidates.NO_ORIENTATION
        held = [_pair(keys, q, s) for q, s in waiting.rows[keypoint & ~asked, :2].tolist()]
        counted = [pair for pair in held if family is None or (family(pair[0]) is not None and family(pair[1]) is not None)]
        lost = [pair for pair in counted if pair in verified]
        same = sum(family(a) == family(b) for a, b in lost) if family else "-"
        other = len(lost) - same if family and isinstance(same, int) else "-"
        more_hash = int((asked[: len(hash_alone)] & ~hash_alone).sum())  # the far rows come first, in the same order
        copies = sum(pair in scored for pair in lost) if scored is not None else "-"
        share = len(held) / max(1, int(keypoint.sum()))
        cpu = f"{sum(cpu_of.get(pair, 0.0) for pair in held) / sum(cpu_of.values()):.1%}" if cpu_of else "-"
        counts = f"{block:>5} {int(keypoint.sum()):>9} {len(held):>9} {share:>6.1%} {len(lost):>13} {same:>10} {other:>5}"
        print(f"{counts} {copies:>13} {more_hash:>15} {cpu:>7}")
    return 0


def searched(state: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The state's keys, the real hash and keypoint searches' rows over them all (as a first scan asks), and their ages."""
    from bench.keypoint_delta import backend_on
    from dupe_scanner.backends.embedded import arrival_order

    with tempfile.TemporaryDirectory() as scratch:
        for kept in state.glob("state.db.keypoints*"):
            shutil.copy(kept, Path(scratch) / kept.name)
        backend = backend_on(state, Path(scratch) / "state.db.keypoints")
        keys, hashes, analysed_at = backend._load_hashes(None)
        query_rows = np.arange(len(keys))
        age = arrival_order(analysed_at, None)
        points = backend.keypoints.points(keys, lambda some: backend._load_descriptors(some)[0], len(query_rows))

        def descriptors_of(rows: list[int]) -> dict[int, list[np.ndarray]]:
            own, mirrored = backend._load_descriptors([keys[row] for row in rows])
            return {row: [own[at], mirrored[at]] for at, row in enumerate(rows)}

        hashed, ranked = candidates.search(keys, hashes, query_rows, points, descriptors_of, threads=2, age=age)
        backend.close()
    return keys, hashed, ranked, age


def scored_copies(connection, labels: Path, split: str | None) -> set[tuple[str, str]]:
    """The labelled set's positives (an original and its copy) of ``split``, as content pairs in ``ScoredPair`` order."""
    images = labels.parent / "images"
    files = connection.execute("SELECT path, content_hash FROM files").fetchall()
    content = {str(Path(path).relative_to(images)): key for path, key in files if Path(path).is_relative_to(images)}
    positives = json.loads(labels.read_text())["positives"]
    pairs = [(content.get(p["first"]), content.get(p["second"])) for p in positives if split is None or p["split"] == split]
    return {(min(a, b), max(a, b)) for a, b in pairs if a and b}


def scored_again(connection, sample: int) -> dict[tuple[str, str], float]:
    """The CPU seconds of scoring again each of ``sample`` of the state's stored pairs (keys in ``ScoredPair`` order)."""
    if not sample:
        return {}
    pairs = connection.execute("SELECT first, second FROM pairs").fetchall()
    cpu: dict[tuple[str, str], float] = {}
    for first, second, a, b in pair_features(connection, random.Random(7).sample(pairs, min(sample, len(pairs)))):
        start = time.process_time()
        pairing.score_pair(a, b, None)
        cpu[min(first, second), max(first, second)] = time.process_time() - start
    return cpu


def asked_rows(waiting: candidates.WaitingCandidates, keys: list[str], verified: set[tuple[str, str]]) -> np.ndarray:
    """bool[len(waiting)]: the rows a scan asks, the earning replayed on ``verified``."""
    asked = waiting.rows[:, 3] == 0
    number, this_block = 0, asked.copy()
    while this_block.any():
        earned = {q for q, s in waiting.rows[this_block, :2].tolist() if _pair(keys, q, s) in verified}
        number += 1
        this_block = (waiting.rows[:, 3] == number) & np.isin(waiting.rows[:, 0], np.fromiter(earned, np.int64, len(earned)))
        asked |= this_block
    return asked


def _pair(keys: list[str], first: int, second: int) -> tuple[str, str]:
    return min(keys[first], keys[second]), max(keys[first], keys[second])


if __name__ == "__main__":
    sys.exit(main())
