"""What a scan of 100 new pictures costs as the library grows: N = 10,000 to 1,000,000, simulated.

``python -m bench.incremental [--sizes 10000,100000] [--root DIR]`` prints one table.

Each library is bench/scale's fingerprint simulation (``bench/scale_simulate.py``: real
fingerprints of indexed pictures, synthetic ones made from them, written through the real
state functions), settled as a finished scan leaves it: every content compared, no pair
above the floor among the synthetic ones (their pairs would only change the grouping's
work, which reads matched pictures alone). Then, with the real command line:

1. *catch-up*: 100 contents are added and ``scan`` runs; it writes the kept keypoint base
   (every descriptor read once, as after every growth by a quarter);
2. *incremental*: 100 more are added and ``scan`` runs: the steady state, the cost the
   service pays after each batch of new photos. Wall time, peak RSS of all processes, and
   the bytes the process read through ``read()`` (SQLite's reads, page cache or not).

Beside it, in the same run on the same state: reading every content's hashes the way scans
did before state revision 0003 (a substring of each ``features`` blob, which makes SQLite
read the whole 20 KB blob) against the way they do now (``feature_hashes``).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

from bench.__main__ import _skimage_data
from bench.scale import SCALE_ROOT, measured
from bench.scale_library import Pool
from bench.scale_simulate import ADDED, cli, index_base, insert, read_real, synthesise

BASE_PICTURES = 1000


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.incremental", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="library sizes, ascending (default 10000,100000)")
    parser.add_argument("--root", type=Path, default=SCALE_ROOT, help=f"where the pictures and states live (default {SCALE_ROOT})")
    options = parser.parse_args()
    base = options.root / "simulation" / f"base-{BASE_PICTURES}"
    if not _indexed_by_this_analyser(base):  # the pool (the photographs) is needed only to index it
        index_base(Pool(options.root, _skimage_data(), log=lambda line: print(line, flush=True)), BASE_PICTURES, base)
    rows = []
    for size in (int(s) for s in options.sizes.split(",")):
        rows.append(measure(base, size, options.root / "incremental" / f"size-{size}"))
        print_table(rows)
    return 0


def _indexed_by_this_analyser(base: Path) -> bool:
    from dupe_scanner.analysis.features import ANALYSER

    done = base / ".complete"
    return done.exists() and done.read_text().split()[-1] == ANALYSER


def measure(base: Path, size: int, folder: Path) -> dict:
    started = time.perf_counter()
    synthesise(base, size, folder)
    synthesised = time.perf_counter() - started
    settle(folder)
    real = read_real(folder)
    first_added = size - len(real.keys)
    insert(folder, real, range(first_added, first_added + ADDED), tag="catch-up", added_below=size)
    catch_up = timed_scan(folder)
    insert(folder, real, range(first_added + ADDED, first_added + 2 * ADDED), tag="added", added_below=size)
    incremental = timed_scan(folder)
    old_way, new_way = hash_reads(folder / "state" / "state.db")
    return {
        "size": size,
        "synthesis_s": synthesised,
        "catch_up_s": catch_up["seconds"],
        "catch_up_peak": catch_up["peak"],
        "scan_s": incremental["seconds"],
        "scan_peak": incremental["peak"],
        "scan_read": incremental["read"],
        "old_hashes_s": old_way[0],
        "old_hashes_read": old_way[1],
        "new_hashes_s": new_way[0],
        "new_hashes_read": new_way[1],
        "state_bytes": sum(p.stat().st_size for p in (folder / "state").rglob("*") if p.is_file()),
    }


def settle(folder: Path) -> None:
    """The state as a finished scan leaves it: every content compared, the floor and comparison recorded."""
    from dupe_scanner.backends.embedded import EmbeddedBackend
    from dupe_scanner.scanning import COMPARISON_KEY, FLOOR_KEY, PAIR_FLOOR
    from dupe_scanner.store import contents as content_store
    from dupe_scanner.store.database import open_state, write_transaction

    engine = open_state(folder / "state" / "state.db")
    with write_transaction(engine) as connection:
        connection.exec_driver_sql("UPDATE contents SET needs_scan = 0")
        content_store.set_meta(connection, FLOOR_KEY, repr(min(PAIR_FLOOR, 0.6)))
        content_store.set_meta(connection, COMPARISON_KEY, EmbeddedBackend.comparison)
    engine.dispose()


def timed_scan(folder: Path) -> dict:
    before = read_chars()
    seconds, peak, _ = measured([*cli(folder), "scan"], cwd=folder)
    return {"seconds": seconds, "peak": peak, "read": read_chars() - before}  # the reaped child's reads count to us


def hash_reads(state: Path) -> tuple[tuple[float, int], tuple[float, int]]:
    """(seconds, bytes read) to read every content's hashes the old way and the new way."""
    from dupe_scanner.analysis.features import ANALYSER, PREFIX_BYTES

    queries = (
        (f"SELECT hash, substr(data, 1, {PREFIX_BYTES}) FROM features WHERE analyser = ? ORDER BY hash", (ANALYSER,)),
        ("SELECT hash, prefix FROM feature_hashes WHERE analyser = ? ORDER BY hash", (ANALYSER,)),
    )
    results = []
    for query, parameters in queries:
        with sqlite3.connect(state) as connection:
            before, started = read_chars(), time.perf_counter()
            connection.execute(query, parameters).fetchall()
            results.append((time.perf_counter() - started, read_chars() - before))
    return results[0], results[1]


def read_chars() -> int:
    """Bytes this process and its reaped children read through read() (``rchar``)."""
    for line in Path(f"/proc/{os.getpid()}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def print_table(rows: list[dict]) -> None:
    mb = lambda value: f"{value / 1e6:,.0f} MB"  # noqa: E731
    header = [
        "N", "synthesis", "catch-up scan", "its peak", "scan of 100 added", "its peak", "its reads", "hashes, old way", "hashes, new way", "state",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [
            f"{row['size']:,}",
            f"{row['synthesis_s']:.0f} s",
            f"{row['catch_up_s']:.1f} s",
            mb(row["catch_up_peak"]),
            f"{row['scan_s']:.1f} s",
            mb(row["scan_peak"]),
            mb(row["scan_read"]),
            f"{row['old_hashes_s']:.2f} s, {mb(row['old_hashes_read'])}",
            f"{row['new_hashes_s']:.2f} s, {mb(row['new_hashes_read'])}",
            mb(row["state_bytes"]),
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
