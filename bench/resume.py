"""A first scan stopped by a kill, then run again: what the kill cost, against a scan never stopped.

    .venv/bin/python -m bench.resume [--size 10000] [--parts-before-kill 1] [--peer-at-once]

Takes the state bench/scale's fingerprint simulation left for ``--size`` (``--root``,
``simulation/size-N``), copies it to a scratch folder without its kept indexes (as before a
first scan), and runs the real ``dupe-scanner scan --full`` on copies of it:

- **never stopped**: one scan, to its end;
- **killed, then resumed**: the scan is killed (SIGKILL, as a power cut or the OOM killer
  would) just after it has stored ``--parts-before-kill`` parts of its comparison (the log
  line "compared N of M pictures; their pairs are stored"), then ``dupe-scanner scan`` runs on
  what it left;
- with ``--peer-at-once``, **at once**: the scan as it was before parts, every picture compared
  before any pair is stored (``COMPARISON_PART`` set past the library's size), the peer
  whose CPU shows what the parts themselves cost.

One table: for each run, its wall seconds, its CPU seconds (all processes, workers included, polled every 0.2 s),
its peak RSS (all processes together, polled every 0.2 s), how many pictures the last scan
compared, and a digest of the pairs the state ends with: the same digest, the same pairs
and scores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
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
from bench.scan_memory import copy_before_first_scan

PART_STORED = "their pairs are stored"
MB = 2**20
AT_ONCE = "import sys, dupe_scanner.scanning as s; s.COMPARISON_PART = 10**12; from dupe_scanner.cli import main; sys.exit(main())"


@dataclass
class Run:
    name: str
    wall: float = 0.0
    cpu: float = 0.0
    peak: int = 0
    compared: str = ""
    digest: str = ""
    log: list[str] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10000, help="the simulated size whose state to scan (default 10000)")
    parser.add_argument("--root", type=Path, default=CACHE / "scale-sim", help="bench/scale's --root of the simulation")
    parser.add_argument("--parts-before-kill", type=int, default=1, help="parts stored before the kill (default 1)")
    parser.add_argument("--peer-at-once", action="store_true", help="also scan with every picture compared before any pair is stored")
    arguments = parser.parse_args()
    folder = arguments.root / "simulation" / f"size-{arguments.size}"
    if not (folder / "state" / "state.db").exists():
        print(f"no simulated state in {folder} (run bench.scale --simulate {arguments.size} first)")
        return 1
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="resume-") as scratch:
        killed_copy = copy_before_first_scan(folder, Path(scratch) / "killed")
        killed = scan_in(killed_copy, f"killed after {arguments.parts_before_kill} part(s)", kill_after=arguments.parts_before_kill)
        resumed = scan_in(killed_copy, "  then resumed", full=False)
        runs += [killed, resumed, total_of("  killed + resumed", killed, resumed)]
        runs.insert(0, scan_in(copy_before_first_scan(folder, Path(scratch) / "never-stopped"), "never stopped"))
        if arguments.peer_at_once:
            runs.append(scan_in(copy_before_first_scan(folder, Path(scratch) / "at-once"), "at once (peer)", at_once=True))
    print_table(arguments.size, runs)
    return 0


def scan_in(scratch: Path, name: str, full: bool = True, kill_after: int | None = None, at_once: bool = False) -> Run:
    start = [sys.executable, "-c", AT_ONCE] if at_once else [sys.executable, "-m", "dupe_scanner"]
    command = [*start, "--config", str(scratch / "settings.toml"), "--log-level", "debug", "scan", *(["--full"] if full else [])]
    print(f"{name}: {' '.join(command[1:])}", flush=True)
    run = Run(name)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stored_parts = threading.Semaphore(0)

    def read_log() -> None:
        assert process.stderr is not None  # started with stderr=PIPE
        for line in process.stderr:
            run.log.append(line)
            if PART_STORED in line:
                stored_parts.release()
            if "scan:" in line and "compared" in line:
                run.compared = line.split("compared", 1)[1].split(",")[0].strip()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    if kill_after is not None:
        threading.Thread(target=kill_when_stored, args=(process, stored_parts, kill_after), daemon=True).start()
    run.peak, run.cpu = watch(process)
    reader.join()
    run.wall = time.perf_counter() - started
    if kill_after is None and process.returncode:
        raise SystemExit(f"{name}: the scan failed ({process.returncode}):\n{''.join(run.log[-20:])}")
    run.digest = pairs_digest(scratch / "state" / "state.db")
    if kill_after is not None:
        run.compared = f"{kill_after} part(s) stored"
    return run


def kill_when_stored(process: subprocess.Popen, stored_parts: threading.Semaphore, parts: int) -> None:
    for _ in range(parts):
        stored_parts.acquire()
    os.kill(process.pid, signal.SIGKILL)  # the workers see their parent go and end


def watch(process: subprocess.Popen) -> tuple[int, float]:
    """The peak RSS of ``process`` and all its descendants together, and their CPU seconds.

    The CPU is each process's last reading, summed: the workers are children of a fork
    server that outlives the scan, so the kernel's count of reaped children misses them."""
    peak = 0
    cpu: dict[int, float] = {}
    scanning = psutil.Process(process.pid)
    while process.poll() is None:
        together = 0
        for member in [scanning, *children_of(scanning)]:
            try:
                with member.oneshot():
                    together += member.memory_info().rss
                    times = member.cpu_times()
                cpu[member.pid] = times.user + times.system
            except psutil.Error:
                continue
        peak = max(peak, together)
        time.sleep(0.2)
    return peak, sum(cpu.values())


def children_of(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def pairs_digest(state: Path) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(state) as connection:
        for first, second, score in connection.execute('SELECT first, second, score FROM pairs ORDER BY first, second'):
            digest.update(f"{first} {second} {score:.6f}\n".encode())
    return digest.hexdigest()[:12]


def total_of(name: str, *runs: Run) -> Run:
    return Run(name, wall=sum(run.wall for run in runs), cpu=sum(run.cpu for run in runs), peak=max(run.peak for run in runs), digest=runs[-1].digest)


def print_table(size: int, runs: list[Run]) -> None:
    print(f"A first scan of {size:,} simulated pictures, stopped and resumed")
    print(f"{'run':<28} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'compared':>22} {'pairs digest':>13}")
    for run in runs:
        print(f"{run.name:<28} {run.wall:>8.1f} {run.cpu:>8.1f} {run.peak / MB:>8.0f} {run.compared:>22} {run.digest:>13}")


if __name__ == "__main__":
    raise SystemExit(main())
