"""The pictures analysed since the kept keypoint base was written (the delta): searched
exhaustively, or filed in the base's cells.

``python -m bench.keypoint_delta --state DIR [--searches all,100,1] [--rounds 2]`` prints one table.

``DIR`` holds a scanned state (``state.db``) and its kept keypoint base (``state.db.keypoints``
and its index), such as a bench/scale run's ``state`` folder after its scan of 100 added
pictures. Its files are copied to a temporary folder first, so the state is left as it was.

For each search size (``all``: every picture, as a full comparison asks; a number: that many of
the newest pictures, as the scan of new ones asks) and each way of holding the delta, one
process builds the point index through the real ``KeypointStore`` (the base read from its
file, the delta from the state) and proposes the candidates of those pictures through the real
``propose``: its CPU and wall seconds, its peak RSS and the candidates. The two ways alternate
within each round. The store chooses between them by the search's size (``keypoint_store._delta``);
here each is asked for by the size the store is told.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WAYS = {"exhaustive": 0, "in cells": 10**9}  # the search size the store is told: none, or past any cell count


def measure(state: Path, searched: str, told: int) -> dict:
    """One search in this process (``--one``), on copies of the kept files."""
    with tempfile.TemporaryDirectory() as scratch:
        for kept in state.glob("state.db.keypoints*"):
            shutil.copy(kept, Path(scratch) / kept.name)
        return proposed_for_newest(backend_on(state, Path(scratch) / "state.db.keypoints"), searched, told)


def backend_on(state: Path, keypoint_file: Path):
    """The embedded backend on ``state``'s ``state.db``, its kept keypoint files at ``keypoint_file``."""
    from sqlalchemy import create_engine

    from dupe_scanner.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(create_engine(f"sqlite:///{state / 'state.db'}"), 2, 10**9, keypoint_file=keypoint_file)


def proposed_for_newest(backend, searched: str, told: int) -> dict:
    """The candidates of the newest ``searched`` pictures (``all``: every one) through the real
    ``propose``, the store told the search looks up ``told`` pictures: CPU and wall seconds,
    peak RSS of this process, the delta's pictures, the candidates and their digest."""
    from dupe_scanner.analysis.candidates import propose
    from dupe_scanner.backends.embedded import arrival_order

    keys, hashes, analysed_at = backend._load_hashes(None)
    newest = np.argsort(analysed_at, kind="stable")
    query_rows = np.sort(newest if searched == "all" else newest[-int(searched) :])
    age = arrival_order(analysed_at, None if searched == "all" else query_rows)
    wall, cpu = time.perf_counter(), time.process_time()
    points = backend.keypoints.points(keys, lambda some: backend._load_descriptors(some)[0], told)

    def descriptors_of(rows: list[int]) -> dict[int, list[np.ndarray]]:
        own, mirrored = backend._load_descriptors([keys[row] for row in rows])
        return {row: [own[at], mirrored[at]] for at, row in enumerate(rows)}

    candidates = propose(keys, hashes, query_rows, points, descriptors_of, threads=2, age=age)
    delta = getattr(points, "delta", None)
    return {
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "pictures": len(keys),
        "delta": 0 if delta is None else len(delta.owners.rows),
        "candidates": len(candidates),
        "digest": hashlib.sha256(np.ascontiguousarray(candidates.rows).tobytes()).hexdigest()[:12],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="a folder with state.db and its kept keypoint base")
    parser.add_argument("--searches", default="all,100,1", help="pictures searched: 'all' or the newest N, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("SEARCHED", "TOLD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.state, args.one[0], int(args.one[1]))))
        return
    if not (args.state / "state.db").exists() or not list(args.state.glob("state.db.keypoints")):
        sys.exit(f"{args.state}: no state.db with a kept keypoint base (state.db.keypoints) beside it; scan a library first")
    columns = [("searched", 8), ("way", 10), ("round", 5), ("pictures", 8), ("delta", 6)]
    columns += [("CPU s", 8), ("wall s", 7), ("peak MB", 7), ("candidates", 10)]
    print(" ".join(f"{name:>{width}}" for name, width in columns), "digest")
    for searched in args.searches.split(","):
        for round_ in range(1, args.rounds + 1):
            ways = list(WAYS.items()) if round_ % 2 else list(WAYS.items())[::-1]
            for way, told in ways:
                command = [sys.executable, "-m", "bench.keypoint_delta", "--state", str(args.state), "--one", searched, str(told)]
                row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                print(
                    f"{searched:>8} {way:>10} {round_:>5} {row['pictures']:>8} {row['delta']:>6} {row['cpu']:>8.1f} {row['wall']:>7.1f} "
                    f"{row['peak']:>7.0f} {row['candidates']:>10} {row['digest']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
