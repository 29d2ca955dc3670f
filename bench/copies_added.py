"""Copies of a scanned library's pictures added and scanned: ``python -m bench.copies_added --run DIR``.

``python -m bench.copies_added --run DIR [--copies 100] [--before PYTHON]`` prints one table.

Issue 11, target 2: incremental work follows what changed. A copy made long after its
original (an album exported again at another size, a backup synced back) is compared in a
later scan than its original; when it is its original's twin (``analysis.twins``), its pairs
take the verdicts the state holds for the original's rather than being verified again.

``--run``: a run folder a bench left, scanned (``settings.toml`` and ``state/``: the labelled
bench's ``runs/labelled``, a bench/scale ``runs/dupe-scanner-N``). ``--copies`` of the pictures
its state knows are drawn at random (a fixed seed), each resized to 3/4 and saved as a JPEG
at quality 92 in a folder beside the run (kept between runs). On a fresh copy of the run
(reports left out), the real command line indexes that folder, then scans with the debug
log, whose lines say how many candidate pairs each part proposed and how many took a twin's
verdict. ``--before PYTHON``: the interpreter of an environment with an earlier version (or
a script that runs one), measured the same way on another fresh copy, right after.

Columns: index and scan wall seconds, the scan's CPU seconds (all processes) and peak RSS
(all processes, bench/scale.py ``measured``), candidates, those taken from a twin, and the
verified pairs the state holds after.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
from pathlib import Path

from PIL import Image

from bench.report_scale import print_table as print_markdown
from bench.scale import MB, measured_with_cpu
from bench.scan_log import candidates_and_taken

SEED = 3
SHRINK = 0.75  # each copy's side, against its original's
QUALITY = 92


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.copies_added", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a scanned run folder (settings.toml and state/)")
    parser.add_argument("--copies", type=int, default=100, help="copies of the library's pictures to add (default 100)")
    parser.add_argument("--before", type=Path, help="the python of an environment with an earlier version, measured after this code")
    options = parser.parse_args()
    state = options.run / "state" / "state.db"
    if not (options.run / "settings.toml").is_file() or not state.is_file():
        parser.error(f"{options.run} holds no scanned run: it needs settings.toml and state/state.db (run bench/run or bench/scale first)")
    copies = write_copies(library_pictures(state), options.copies, options.run.parent / f"{options.run.name}-copies-{options.copies}")
    rows = [measure("this code", Path(sys.executable), options.run, copies)]
    if options.before is not None:
        rows.append(measure("before", options.before, options.run, copies))
    print_table(rows, options.copies)
    return 0


def library_pictures(state: Path) -> list[Path]:
    """The files the state knows that are still there, in path order."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as connection:
        paths = [os.fsdecode(path) for (path,) in connection.execute("SELECT path FROM files WHERE content_hash IS NOT NULL ORDER BY path")]
    return [Path(path) for path in paths if Path(path).is_file()]


def write_copies(pictures: list[Path], count: int, folder: Path) -> Path:
    """``count`` of ``pictures``, drawn at random, resized and saved as JPEG in ``folder``; kept between runs."""
    done = folder / ".done"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for number, path in enumerate(random.Random(SEED).sample(pictures, min(count, len(pictures)))):
        with Image.open(path) as image:
            picture = image.convert("RGB")
        size = (max(1, round(picture.width * SHRINK)), max(1, round(picture.height * SHRINK)))
        picture.resize(size, Image.Resampling.LANCZOS).save(folder / f"copy-{number:04d}.jpg", quality=QUALITY)
    done.write_text(f"{count} copies\n")
    return folder


def measure(code: str, python: Path, run: Path, copies: Path) -> dict:
    work = run.parent / f"{run.name}-copies-run"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(run, work, ignore=shutil.ignore_patterns("reports"))
    cli = [str(python), "-m", "dupe_scanner", "--config", str(work / "settings.toml")]
    index_s, _, _, _ = measured_with_cpu([*cli, "index", "--dir", str(copies)], cwd=work)
    scan_s, scan_peak, scan, scan_cpu = measured_with_cpu([*cli, "--log-level", "debug", "scan"], cwd=work)
    candidates, taken = candidates_and_taken(scan.stderr + scan.stdout)
    with sqlite3.connect(work / "state" / "state.db") as connection:
        verified = connection.execute("SELECT count(*) FROM pairs WHERE score >= 0.6").fetchone()[0]
    shutil.rmtree(work)
    return {
        "code": code,
        "index_s": index_s,
        "scan_s": scan_s,
        "scan_cpu": scan_cpu,
        "candidates": candidates,
        "taken": taken,
        "scan_peak": scan_peak,
        "verified": verified,
    }


COLUMNS = (
    ("code", "code", "{}"),
    ("index s", "index_s", "{:.1f}"),
    ("scan s", "scan_s", "{:.1f}"),
    ("scan CPU s", "scan_cpu", "{:.1f}"),
    ("candidates", "candidates", "{:,}"),
    ("taken from a twin", "taken", "{:,}"),
    ("scan peak MB", "scan_peak_mb", "{:,.0f}"),
    ("verified pairs after", "verified", "{:,}"),
)


def print_table(rows: list[dict], copies: int) -> None:
    print(f"\n{copies} copies of the library's pictures added, then scanned (peak: RSS of the scan and all its workers)")
    print_markdown([{**row, "scan_peak_mb": row["scan_peak"] / MB} for row in rows], COLUMNS)
    print("(taken: candidate pairs that took a twin's verdict rather than being verified)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
