"""Where a first scan's memory goes: the candidate search against the verification, process by process.

    .venv/bin/python -m bench.scan_memory [--sizes 10000,40000] [--search-only]

Takes the states bench/scale's fingerprint simulation left (``--root``, ``simulation/size-N``),
copies each to a scratch folder without its kept indexes (``state.db.keypoints``,
``state.db.hashes``, as before a first scan) and runs the real ``dupe-scanner scan --full``
on it, polling the RSS of the scanning process and of its workers every 0.2 s. The debug line
"N candidate pairs among M contents" ends the candidate search; the verification, grouping
and reports follow. ``--search-only`` stops each scan there (a first scan of 40,000 takes an
hour; its search, minutes).

One table: for each N, the peak RSS of the scanning process during the search, then of the
scanning process and of its workers during the rest, and the peak of all processes together.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.__main__ import CACHE

SEARCH_DONE = "candidate pairs among"
MB = 2**20


@dataclass
class Peaks:
    search_main: int = 0
    rest_main: int = 0
    rest_workers: int = 0
    together: int = 0
    searched_at: float | None = None  # seconds into the scan
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,40000", help="simulated sizes whose states to scan (default 10000,40000)")
    parser.add_argument("--root", type=Path, default=CACHE / "scale-sim", help="bench/scale's --root of the simulation")
    parser.add_argument("--search-only", action="store_true", help="stop each scan once its candidates are proposed")
    arguments = parser.parse_args()
    rows = []
    for size in (int(text) for text in arguments.sizes.split(",") if text):
        folder = arguments.root / "simulation" / f"size-{size}"
        if not (folder / "state" / "state.db").exists():
            print(f"N={size}: no simulated state in {folder} (run bench.scale --simulate {size} first)", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="scan-memory-") as scratch:
            rows.append((size, first_scan_peaks(folder, Path(scratch), arguments.search_only)))
        print_table(rows)
    return 0


def first_scan_peaks(folder: Path, scratch: Path, search_only: bool) -> Peaks:
    """Copy ``folder``'s state to ``scratch`` without its kept indexes, and scan it in full."""
    copy_before_first_scan(folder, scratch)
    command = [sys.executable, "-m", "dupe_scanner", "--config", str(scratch / "settings.toml"), "--log-level", "debug", "scan", "--full"]
    print(f"{folder.name}: {' '.join(command[1:])}", flush=True)
    return watched(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), search_only)


def copy_before_first_scan(folder: Path, scratch: Path) -> Path:
    """``folder``'s state and settings in ``scratch``, without the kept indexes a scan writes
    beside the state: as a first scan finds them."""
    (scratch / "state").mkdir(parents=True)
    with sqlite3.connect(folder / "state" / "state.db") as source, sqlite3.connect(scratch / "state" / "state.db") as copy:
        source.backup(copy)
    shutil.copy(folder / "settings.toml", scratch / "settings.toml")
    return scratch


def watched(process: subprocess.Popen, search_only: bool) -> Peaks:
    peaks = Peaks()
    started = time.perf_counter()

    def read_log() -> None:
        assert process.stderr is not None  # started with stderr=PIPE
        for line in process.stderr:
            peaks.log.append(line)
            if SEARCH_DONE in line and peaks.searched_at is None:
                peaks.searched_at = time.perf_counter() - started

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    scanning = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            main_rss = scanning.memory_info().rss
            workers = sum(child.memory_info().rss for child in scanning.children(recursive=True))
        except psutil.Error:
            continue
        if peaks.searched_at is None:
            peaks.search_main = max(peaks.search_main, main_rss)
        elif search_only:
            process.terminate()
        else:
            peaks.rest_main, peaks.rest_workers = max(peaks.rest_main, main_rss), max(peaks.rest_workers, workers)
        peaks.together = max(peaks.together, main_rss + workers)
        time.sleep(0.2)
    reader.join()
    peaks.seconds = time.perf_counter() - started
    if peaks.searched_at is None or (process.returncode and not search_only):
        raise SystemExit(f"the scan failed ({process.returncode}):\n{''.join(peaks.log[-20:])}")
    return peaks


def print_table(rows: list[tuple[int, Peaks]]) -> None:
    print("A first scan's peak RSS, MB (search: the candidate search; rest: verification, grouping, reports)")
    print(f"{'N':>9} {'search s':>9} {'search main':>12} {'rest main':>10} {'rest workers':>13} {'all together':>13} {'scan s':>8}")
    for size, peaks in rows:
        rest = (f"{peaks.rest_main / MB:>10.0f} {peaks.rest_workers / MB:>13.0f}") if peaks.rest_main else f"{'-':>10} {'-':>13}"
        print(f"{size:>9} {peaks.searched_at:>9.1f} {peaks.search_main / MB:>12.0f} {rest} {peaks.together / MB:>13.0f} {peaks.seconds:>8.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
