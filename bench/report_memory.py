"""The memory the main process keeps after writing a scanned state's reports from scratch, with
glibc's malloc arenas as they come and in one arena (``dupe_scanner.malloc_arenas``).

``python -m bench.report_memory [--state STATE_DB] [--runs 2]`` prints one table.

Each run is a fresh process that reads the state's groups as a scan does (``read_grouping``,
``form_groups``) and writes every report into an empty folder with an empty thumbnail cache,
as the interim reports of a first scan do: every thumbnail shown is made, four threads at a
time (the review page's from the pictures, the graph pages' from those). The two ways
alternate, so both see the machine alike. The state is only read.
Columns: seconds (wall, and CPU of all threads: user and system), the RSS once the groups are
formed, its peak (``ru_maxrss``) and what is left once the reports are written.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "dupe-scanner-bench"
LABELLED_STATE = CACHE / "runs" / "labelled" / "state" / "state.db"
THRESHOLD = 0.6  # the default
WAYS = {"glibc's default": False, "one arena": True}
MB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=LABELLED_STATE, help=f"a scanned state (default {LABELLED_STATE})")
    parser.add_argument("--runs", type=int, default=2, help="runs of each way, alternating (default 2)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--child", choices=("default", "limited"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(write_once(options.state, options.out, options.threshold, options.child == "limited")))
        return 0
    if not options.state.is_file():
        print(f"no state at {options.state}: run the labelled bench first (python -m bench --skip-peer --skip-speed)")
        return 2
    rows = [
        {"way": way, **run_child(options.state, options.threshold, limited)}
        for _ in range(options.runs)
        for way, limited in WAYS.items()
    ]
    print_table(rows)
    return 0


def run_child(state: Path, threshold: float, limited: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="report-memory-") as out:
        command = [sys.executable, "-m", "bench.report_memory", "--state", str(state), "--out", out]
        command += ["--threshold", str(threshold), "--child", "limited" if limited else "default"]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.splitlines()[-1])


def write_once(state: Path, out: Path, threshold: float, limited: bool) -> dict[str, Any]:
    """One fresh write of every report, measured from inside the process writing it."""
    from dupe_scanner.malloc_arenas import limit_malloc_arenas

    if limited and not limit_malloc_arenas():
        raise SystemExit("glibc refused the arena limit (or MALLOC_ARENA_MAX is set): nothing to compare")
    from dupe_scanner.reports import write_reports
    from dupe_scanner.scanning import form_groups, read_grouping
    from dupe_scanner.settings import ReportSettings
    from dupe_scanner.store.database import open_state

    groups = form_groups(read_grouping(open_state(state), threshold), threshold, unscored_are_far=True)
    before = _rss()
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    outcome = write_reports(groups, out / "reports", ReportSettings(), threshold, thumbnail_cache=out / "thumbnails")
    ended = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "groups": len(groups),
        "members": sum(len(group.members) for group in groups),
        "made": outcome.thumbnails_decoded + outcome.review_thumbnails_decoded,
        "wall": time.perf_counter() - started,
        "user": ended.ru_utime - cpu.ru_utime,
        "system": ended.ru_stime - cpu.ru_stime,
        "groups_mb": before / MB,
        "peak_mb": ended.ru_maxrss * 1024 / MB,
        "kept_mb": _rss() / MB,
    }


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = ["malloc arenas", "groups", "pictures", "thumbnails made", "wall s", "user CPU s", "system CPU s"]
    columns += ["RSS with the groups", "peak RSS", "RSS kept after"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print(
            f"| {row['way']} | {row['groups']:,} | {row['members']:,} | {row['made']:,} | {row['wall']:.1f} | {row['user']:.1f} "
            f"| {row['system']:.1f} | {row['groups_mb']:.0f} MB | {row['peak_mb']:.0f} MB | {row['kept_mb']:.0f} MB |"
        )


if __name__ == "__main__":
    sys.exit(main())
