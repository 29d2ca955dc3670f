"""The first scan after an upgrade of the verifier: scoring again the verified pairs, against comparing every picture.

    .venv/bin/python -m bench.verifier_upgrade --run FOLDER [--older verify-16]

``--run`` is a folder holding a ``settings.toml`` and the state a scan left, of a library
still on disk (bench/scale's ``runs/dupe-scanner-N``, after ``dupe-scanner scan --full``
run there by the older verifier's code). It is copied twice to a scratch folder, and the
real ``dupe-scanner scan`` runs on each copy:

- **tightening**: the state as the older verifier left it, which the current one only
  tightens (``verify.TIGHTENS``): its verified pairs are scored again (``scanning.rejudge_verified``);
- **every picture**: the same state scanned with ``--full``, as any other upgrade does.

One table: for each, wall seconds, CPU seconds (all processes, workers included), peak RSS
(all processes together), the pairs stored and verified after it; then how the two states'
verified pairs differ. The two ways should end with the same verified pairs: the tightened
verifier only rejects, and the search proposes what it proposed before.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from bench.scale import measured_with_cpu
from dupe_scanner.analysis.features import ANALYSER
from dupe_scanner.analysis.verify import TIGHTENS, VERIFIER
from dupe_scanner.backends.base import VERIFIED
from dupe_scanner.scanning import COMPARISON_KEY


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verifier_upgrade", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a folder with settings.toml and a scanned state (state/state.db)")
    parser.add_argument(
        "--older", default=TIGHTENS[0] if TIGHTENS else None, help="the verifier that left the state (default: the newest this one tightens)"
    )
    parser.add_argument("--keep", type=Path, help="copy the states into this folder and keep them, to look into afterwards")
    options = parser.parse_args()
    if options.older not in TIGHTENS:
        parser.error(f"{VERIFIER} tightens {', '.join(TIGHTENS) or 'no verifier'}; --older must name one of them")
    found_by = comparison_of(options.run / "state" / "state.db")
    if found_by != f"{ANALYSER}+{options.older}":
        expected = f"{ANALYSER}+{options.older}"
        parser.error(f"the state in {options.run} was scanned by {found_by}, not {expected}: run 'scan --full' there with that code first")
    with tempfile.TemporaryDirectory(prefix="verifier-upgrade-") as scratch:
        folder = options.keep or Path(scratch)
        rows = [measure(options.run, folder / name, full) for name, full in (("tightening", False), ("every picture", True))]
        print_table(rows, found_by)
        print_difference(*(row["verified"] for row in rows))
    return 0


def comparison_of(database: Path) -> str | None:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT value FROM meta WHERE key = ?", (COMPARISON_KEY,)).fetchone()
    return None if row is None else row[0]


def measure(run: Path, copy: Path, full: bool) -> dict:
    shutil.copytree(run, copy)
    command = [sys.executable, "-m", "dupe_scanner", "--config", str(copy / "settings.toml"), "--log-level", "info", "scan"]
    seconds, peak, finished, cpu = measured_with_cpu([*command, *(["--full"] if full else [])], cwd=copy)
    with sqlite3.connect(copy / "state" / "state.db") as connection:
        stored = connection.execute("SELECT count(*) FROM pairs").fetchone()[0]
        verified = set(connection.execute("SELECT first, second FROM pairs WHERE score >= ?", (VERIFIED,)).fetchall())
    rescored = next((line for line in finished.stderr.splitlines() if "no longer verify" in line), "")
    return {"name": copy.name, "seconds": seconds, "cpu": cpu, "peak": peak, "stored": stored, "verified": verified, "log": rescored}


def print_table(rows: list[dict], found_by: str) -> None:
    print(f"The first scan after an upgrade from {found_by} to {ANALYSER}+{VERIFIER} (MB: peak RSS of all processes)")
    print(f"{'how':>14} {'scan s':>8} {'CPU s':>8} {'peak MB':>8} {'pairs stored':>13} {'verified':>9}")
    for row in rows:
        print(f"{row['name']:>14} {row['seconds']:8.1f} {row['cpu']:8.1f} {row['peak'] / 2**20:8.0f} {row['stored']:13,} {len(row['verified']):9,}")
    for row in rows:
        if row["log"]:
            print(f"({row['name']}: {row['log'].split(': ', 1)[-1]})")


def print_difference(tightened: set, everything: set) -> None:
    print(f"verified by both: {len(tightened & everything):,}; only after scoring again: {len(tightened - everything):,}; "
          f"only after comparing every picture: {len(everything - tightened):,}")


if __name__ == "__main__":
    raise SystemExit(main())
