"""Score a scanned state's stored pairs again, and compare two versions' verdicts on them.

A change meant to keep every verdict (a faster search, cheaper arithmetic) is checked so:
each version scores the same sample of stored pairs through the real ``pairing.score_pair``,
at the same time on the same machine, and the two files are compared. The other version is
put on ``PYTHONPATH`` as a folder holding one link, ``dupe_scanner``, to its checkout's
``daemon/``:

    PYTHONPATH=/tmp/before python -m bench.rescore --state DIR --out before.jsonl &
    python -m bench.rescore --state DIR --out after.jsonl
    python -m bench.rescore --compare before.jsonl after.jsonl

``--labels LABELS.json --split tune``: only pairs of two pictures of that split of the labelled
set (``bench/dataset.py``; its pictures are in ``images/`` beside the labels), so that a check
made while a threshold is being chosen never reads the report split.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from pathlib import Path

from bench.stored_state import open_read_only, pair_features
from dupe_scanner.analysis import pairing

SEED = 11
SHOWN = 20  # changed verdicts and moved scores listed by --compare, at most
# Scores apart by less than this have not moved: the same code scoring the same pairs twice
# reads up to 5e-16 apart in a few of them (the order of a float sum), which hid real moves.
MOVED = 1e-9


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rescore", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, help="a scanned state folder (holding state.db)")
    parser.add_argument("--out", type=Path, help="where to write one JSON line a pair scored")
    parser.add_argument("--sample", type=int, default=20_000, help="stored pairs to score again (default 20000)")
    parser.add_argument("--labels", type=Path, help="the labelled set's labels.json, to take one split's pairs only")
    parser.add_argument("--split", help="with --labels: the split whose pairs are scored (tune or report)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="compare two files --out wrote")
    options = parser.parse_args()
    if options.compare:
        return compare(*options.compare)
    if options.state is None or options.out is None:
        parser.error("give --state and --out to score, or --compare BEFORE AFTER")
    if (options.labels is None) != (options.split is None):
        parser.error("--labels and --split go together")
    connection = open_read_only(options.state)
    if connection is None:
        return 2
    with connection:
        pairs = connection.execute("SELECT first, second FROM pairs ORDER BY first, second").fetchall()
        if options.labels is not None:
            pairs = pairs_of_split(connection, pairs, options.labels, options.split)
        sample = random.Random(SEED).sample(pairs, min(options.sample, len(pairs)))
        scored, cpu = score_again(connection, sample, options.out)
    print(f"{scored} of {len(pairs)} stored pairs scored again in {cpu:.1f} CPU s; verdicts in {options.out}")
    return 0


def pairs_of_split(connection: sqlite3.Connection, pairs: list[tuple[str, str]], labels_path: Path, split: str) -> list[tuple[str, str]]:
    images = labels_path.parent / "images"
    labels = json.loads(labels_path.read_text())["images"]
    in_split = set()
    for path, content in connection.execute("SELECT path, content_hash FROM files WHERE content_hash IS NOT NULL"):
        try:
            name = str(Path(path).relative_to(images))
        except ValueError:
            continue
        if labels.get(name, {}).get("split") == split:
            in_split.add(content)
    return [pair for pair in pairs if pair[0] in in_split and pair[1] in in_split]


def score_again(connection: sqlite3.Connection, sample: list[tuple[str, str]], out: Path) -> tuple[int, float]:
    scored, cpu = 0, 0.0
    with out.open("w") as lines:
        for first, second, a, b in pair_features(connection, sample):
            start = time.process_time()
            verdict = pairing.score_pair(a, b, None)
            spent = time.process_time() - start
            scored, cpu = scored + 1, cpu + spent
            lines.write(json.dumps({"pair": [first, second], "score": verdict.score, "verified": verdict.verified, "cpu": spent}) + "\n")
    return scored, cpu


def compare(before_path: Path, after_path: Path) -> int:
    before, after = _read(before_path), _read(after_path)
    common = sorted(before.keys() & after.keys())
    if not common:
        print("the two files share no pair: were they scored from the same state and sample?", file=sys.stderr)
        return 2
    changed = [pair for pair in common if before[pair]["verified"] != after[pair]["verified"]]
    moved = [pair for pair in common if abs(before[pair]["score"] - after[pair]["score"]) > MOVED]
    before_cpu = sum(before[pair]["cpu"] for pair in common)
    after_cpu = sum(after[pair]["cpu"] for pair in common)
    print(f"pairs scored by both: {len(common)}")
    print(f"CPU: {before_cpu:.1f} s before, {after_cpu:.1f} s after ({after_cpu / before_cpu:.2f})")
    print(f"verdicts changed: {len(changed)}; scores moved (by more than {MOVED:g}): {len(moved)}")
    for pair in moved[:SHOWN]:
        was, now = before[pair], after[pair]
        note = "  verdict changed" if pair in changed else ""
        print(f"  {pair[0][:12]} {pair[1][:12]}: {was['score']:.4f} -> {now['score']:.4f}{note}")
    return 0


def _read(path: Path) -> dict[tuple[str, str], dict]:
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {(row["pair"][0], row["pair"][1]): row for row in rows}


if __name__ == "__main__":
    raise SystemExit(main())
