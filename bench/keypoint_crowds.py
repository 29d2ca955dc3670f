"""How crowded a library's keypoint descriptors are, and what looking them up deep buys.

``python -m bench.keypoint_crowds --state DIR [--common 256] [--shares 0,0.3] [--searched all]``
prints one table.

A descriptor whose 32 nearest stored points are all close (within ``DESCRIPTOR_RADIUS``) is
*crowded*. If the pictures holding those points are not one family by hash (fewer than
``FAMILY_SHARE`` of them within reach of one's hash) it is *commonplace* at once (a corner of a
regular pattern, an edge on a smooth ground); else it is looked up ``COMMON`` deep, and is
commonplace if all of those are close too. A commonplace descriptor votes only for the points
it nearly equals; the others for every close point. This measures, on a scanned state, through
the real ``KeypointStore`` and ``keypoint_candidates``, for each ``COMMON`` and family share
asked for (each pair of values in a process of its own, the first one twice, first and last, as
a peer for the machine's load; share 0: every crowded descriptor looked up deep, as before
``FAMILY_SHARE``):

- the keypoint search of the ``--searched`` newest pictures (each against the older ones, as a
  first scan asks): CPU seconds and the keypoint candidates it proposes (the hash's aside);
- of the pairs the state holds as verified (score 0.6 or more), how many the first row's
  candidates hold, and how many of those the others' do not;
- how crowded the descriptors are (those of the oldest ``QUERY_CHUNK`` pictures searched): the
  share whose 32nd nearest point is close, and the share found commonplace.

The verified pairs are the state's own, found by the code that scanned it: a lost one is a
candidate no longer proposed by the keypoints, which the hash may still propose.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keypoint_crowds", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="a scanned state folder (state.db and its kept keypoint files)")
    parser.add_argument("--common", default="256", help="values of COMMON to measure (default 256)")
    parser.add_argument("--shares", default="0,0.3", help="values of FAMILY_SHARE to measure, 0 for none (default 0,0.3)")
    parser.add_argument("--searched", default="all", help="how many of the newest pictures search (default all)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: measure this COMMON/share, print JSON
    options = parser.parse_args()
    if options.one:
        common, share = options.one.split("/")
        print(json.dumps(measure(options.state, int(common), float(share), options.searched)), flush=True)
        return 0
    rules = [(int(common), float(share)) for common in options.common.split(",") for share in options.shares.split(",")]
    rows = [run_child(options.state, common, share, options.searched) for common, share in [*rules, rules[0]]]
    print_table(rows)
    return 0


def run_child(state: Path, common: int, share: float, searched: str) -> dict:
    command = [sys.executable, "-m", "bench.keypoint_crowds", "--state", str(state), "--one", f"{common}/{share}", "--searched", searched]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"COMMON {common}, share {share}: the measurement failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(state: Path, common: int, share: float, searched: str) -> dict:
    """The keypoint search with ``COMMON`` = ``common`` and ``FAMILY_SHARE`` = ``share``, on
    copies of the state's kept keypoint files."""
    import dupe_scanner.analysis.candidates as candidates
    from bench.keypoint_delta import backend_on

    candidates.COMMON, candidates.FAMILY_SHARE = common, share
    with tempfile.TemporaryDirectory() as scratch:
        for kept in state.glob("state.db.keypoints*"):
            shutil.copy(kept, Path(scratch) / kept.name)
        backend = backend_on(state, Path(scratch) / "state.db.keypoints")
        keys, hashes, analysed_at = backend._load_hashes(None)
        order = np.argsort(analysed_at, kind="stable")
        query_rows = np.sort(order if searched == "all" else order[-int(searched) :])
        age = np.empty(len(keys), dtype=np.int64)
        age[order] = np.arange(len(keys))
        points = backend.keypoints.points(keys, lambda some: backend._load_descriptors(some)[0], len(query_rows))
        found: set[tuple[str, str]] = set()
        cpu, crowded, commonplace, descriptors = 0.0, 0, 0, 0
        for start in range(0, len(query_rows), candidates.QUERY_CHUNK):
            rows = query_rows[start : start + candidates.QUERY_CHUNK].tolist()
            own, mirrored = backend._load_descriptors([keys[row] for row in rows])
            queries = {row: [own[at], mirrored[at]] for at, row in enumerate(rows)}
            began = time.process_time()
            pairs = candidates.pairs_of(candidates.keypoint_candidates(points, len(keys), queries, None, 1, age, hashes))
            cpu += time.process_time() - began
            found.update(tuple(sorted((keys[first], keys[second]))) for first, second in pairs)
            if start == 0:  # how crowded: the first chunk's descriptors, a sample
                sample = np.ascontiguousarray(np.concatenate([d for sets in queries.values() for d in sets if len(d)]), dtype=np.uint8)
                distances, owners, found_commonplace = candidates._nearest(points, sample, min(common, points.points), hashes)
                close = (distances < candidates.DESCRIPTOR_RADIUS) & (owners >= 0)
                crowded, commonplace = int(close[:, min(32, close.shape[1]) - 1].sum()), int(found_commonplace.sum())
                descriptors = len(sample)
    return {
        "common": common,
        "share": share,
        "searched": len(query_rows),
        "cpu": cpu,
        "candidates": sorted(found),
        "crowded": crowded / max(1, descriptors),
        "commonplace": commonplace / max(1, descriptors),
        "verified": verified_pairs(state / "state.db"),
    }


def verified_pairs(database: Path) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return [tuple(sorted(pair)) for pair in connection.execute("select first, second from pairs where score >= 0.6")]


def print_table(rows: list[dict]) -> None:
    verified = {tuple(pair) for pair in rows[0]["verified"]}
    peer = {tuple(pair) for pair in rows[0]["candidates"]} & verified
    print(f"{rows[0]['searched']} pictures searched; {len(peer)} of the state's verified pairs among the first row's keypoint candidates")
    print(f"{'COMMON':>7} {'share':>6} {'CPU s':>8} {'candidates':>11} {'verified':>9} {'lost':>5} {'crowded':>8} {'commonplace':>12}")
    for row in rows:
        held = {tuple(pair) for pair in row["candidates"]} & verified
        print(
            f"{row['common']:>7} {row['share']:>6.2f} {row['cpu']:>8.1f} {len(row['candidates']):>11} {len(held):>9} {len(peer - held):>5} "
            f"{row['crowded']:>8.1%} {row['commonplace']:>12.1%}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
