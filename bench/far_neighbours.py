"""How many of a scanned library's hash candidates wait for evidence, and which verified pairs they hold back.

``python -m bench.far_neighbours --state DIR [--near 2,4,6] [--blocks 8,16,32] [--labels FILE [--split tune]]``
prints one table.

A query's hash neighbours further than ``candidates.NEAR_BITS`` are asked ``FAR_BLOCK`` at a
time, nearest first, each block only when the block before held a verified pair. For each
pair of bounds given, this runs the real hash search over the state's hashes, cuts its far
neighbours into blocks (``WaitingCandidates``) and replays the asking on the state's stored
verdicts: a pair it never compared counts as rejected. So read it on a state whose scan asked
every far neighbour (one scanned before far neighbours were held back, or with bounds past today's), or
the held-back pairs' verdicts are not there to be counted.

``--labels``: the bench/scale pool's ``labels.jsonl`` (pictures by file name) or the labelled
set's ``labels.json`` (by path under its ``images``, with ``--split``): the verified pairs held
back are then told apart as one family's (a copy lost, unless a group holds it through
another pair) or two families' (a wrong pair not made).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.stored_state import open_read_only
from dupe_scanner.analysis import candidates
from dupe_scanner.analysis.features import ANALYSER
from dupe_scanner.backends.base import VERIFIED
from dupe_scanner.backends.embedded import _hash_table, arrival_order
from dupe_scanner.store import fingerprints as stored

Family = Callable[[str], str | None]  # a content's family, None when unlabelled or outside the split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.far_neighbours", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="the state folder of a scanned library")
    parser.add_argument("--near", default=str(candidates.NEAR_BITS), help="NEAR_BITS values, comma-separated")
    parser.add_argument("--blocks", default=str(candidates.FAR_BLOCK), help="FAR_BLOCK values, comma-separated")
    parser.add_argument("--labels", type=Path, help="the pool's labels.jsonl or the labelled set's labels.json")
    parser.add_argument("--split", help="with the labelled set's labels: count only pairs of this split")
    arguments = parser.parse_args(argv)
    connection = open_read_only(arguments.state)
    if connection is None:
        return 2
    keys, hashed, age = hash_candidates_of(arguments.state)
    verified = verified_pairs(connection, keys)
    family = families(connection, arguments.labels, arguments.split) if arguments.labels else None
    print(f"{len(keys)} contents, {len(hashed)} hash candidates, {len(verified)} verified pairs stored")
    print(f"{'near bits':>9} {'block':>5} {'candidates':>10} {'held back':>9} {'share':>6} {'verified held':>13} {'one family':>10} {'two':>5}")
    for near in _numbers(arguments.near):
        for block in _numbers(arguments.blocks):
            held = held_back(hashed, age, keys, verified, near, block)
            counted = [pair for pair in held if family is None or (family(pair[0]) is not None and family(pair[1]) is not None)]
            lost = [pair for pair in counted if pair in verified]
            same = sum(family(a) == family(b) for a, b in lost) if family else "-"
            other = len(lost) - same if family and isinstance(same, int) else "-"
            share = len(held) / max(1, len(hashed))
            print(f"{near:>9} {block:>5} {len(hashed):>10} {len(held):>9} {share:>6.1%} {len(lost):>13} {same:>10} {other:>5}")
    return 0


def hash_candidates_of(state: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The state's keys, the real hash search's rows over them all (as a first scan asks), and their ages."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///file:{state / 'state.db'}?mode=ro&uri=true")
    with engine.connect() as connection:
        table = _hash_table(stored.hash_rows(connection, ANALYSER))
    engine.dispose()
    keys = table.key_list()
    age = arrival_order(table.analysed_at, None)
    hashed, _ = candidates._hash_search(table.hashes, np.arange(len(keys)), age)
    return keys, hashed, age


def verified_pairs(connection: sqlite3.Connection, keys: list[str]) -> set[tuple[str, str]]:
    known = set(keys)
    rows = connection.execute("SELECT first, second FROM pairs WHERE score >= ?", (VERIFIED,))
    return {(min(a, b), max(a, b)) for a, b in rows if a in known and b in known}


def held_back(hashed: np.ndarray, age: np.ndarray, keys: list[str], verified: set[tuple[str, str]], near: int, block: int) -> list[tuple[str, str]]:
    """The pairs (keys in ``ScoredPair`` order) a scan with these bounds never asks, the earning replayed on ``verified``."""
    far = candidates.WaitingCandidates.of(hashed, len(keys), age, near, block)
    asked = np.zeros(len(far), bool)
    asked[far.rows[:, 3] == 0] = True
    number, earned = 0, _earning(far, keys, verified, 0, None)
    while earned:
        number += 1
        this_block = (far.rows[:, 3] == number) & np.isin(far.rows[:, 0], np.fromiter(earned, np.int64, len(earned)))
        asked |= this_block
        earned = _earning(far, keys, verified, number, this_block)
    return [(min(keys[q], keys[s]), max(keys[q], keys[s])) for q, s in far.rows[~asked, :2].tolist()]


def _earning(far: candidates.WaitingCandidates, keys: list[str], verified: set[tuple[str, str]], number: int, asked: np.ndarray | None) -> set[int]:
    """The queries whose asked pairs of block ``number`` hold a verified one."""
    rows = far.rows[(far.rows[:, 3] == number) if asked is None else asked]
    return {q for q, s in rows[:, :2].tolist() if (min(keys[q], keys[s]), max(keys[q], keys[s])) in verified}


def families(connection: sqlite3.Connection, labels: Path, split: str | None) -> Family:
    """Each content's family, by its file's name (pool labels) or path under ``images`` (labelled set)."""
    if labels.suffix == ".jsonl":
        by_name = {entry["name"]: entry["family"] for entry in map(json.loads, labels.read_text().splitlines()) if entry}
        name_of: Callable[[Path], str] = lambda path: path.name  # noqa: E731
    else:
        images = json.loads(labels.read_text())["images"]
        by_name = {name: entry["family"] for name, entry in images.items() if split is None or entry.get("split") == split}
        name_of = lambda path: str(path.relative_to(labels.parent / "images")) if path.is_relative_to(labels.parent / "images") else ""  # noqa: E731
    family: dict[str, str] = {}
    for path, content in connection.execute("SELECT path, content_hash FROM files WHERE content_hash IS NOT NULL"):
        name = by_name.get(name_of(Path(path)))
        if name is not None:
            family[content] = name
    return family.get


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main())
