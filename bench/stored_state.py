"""Reading a scanned state's stored pairs and fingerprints, for the benches that score them again."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from dupe_scanner.analysis.features import Features, decode


def open_read_only(state: Path) -> sqlite3.Connection | None:
    """The state's database, read-only; None (having said why) when the folder holds none."""
    database = state / "state.db"
    if not database.exists():
        print(f"no state.db in {state}: give the state folder a scan wrote", file=sys.stderr)
        return None
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True)


def pair_features(connection: sqlite3.Connection, pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str, Features, Features]]:
    """Each pair's two fingerprints, decoded; pairs whose features were let go of since the scan are passed over."""
    for first, second in pairs:
        blobs = dict(connection.execute("SELECT hash, data FROM features WHERE hash IN (?, ?)", (first, second)).fetchall())
        if len(blobs) == 2:
            yield first, second, decode(blobs[first]), decode(blobs[second])
