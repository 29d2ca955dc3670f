"""How long from a new duplicate being written to the reports showing it, default settings.

Starts the real service (``python -m dupe_scanner run``) on a folder of photo-like pictures,
waits until they are indexed and scanned, then, several times, writes a resized, recompressed copy
of one of them and times until ``duplicates.json`` lists it. Default settings
throughout (stable_seconds 5, debounce_seconds 5, workers = cores).

    .venv/bin/python bench/service_latency.py [--pictures 40] [--rounds 3]

``--library FOLDER`` runs it on a library ``python -m bench.million`` built (100,000 or a
million files, their state and reports): the service watches its ``library`` folder, and
each round first writes a new picture and waits until a scan has taken it in, then writes
the copy and times it. The library's fingerprints are the hash prefix alone, so the new
pictures' chance candidates among them are dropped as damaged; they are put back after each
round (``bench.million.restore_fingerprints``), as the million bench does.

    .venv/bin/python bench/service_latency.py --library ~/.cache/dupe-scanner-bench/scale/million/size-100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.photos import make_photo, save
from tests.service_helpers import ServiceProcess, query, wait_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=40, help="distinct pictures already in the folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--library", type=Path, help="a library bench.million built, instead of a new folder of --pictures")
    arguments = parser.parse_args()
    if arguments.library:
        return in_library(arguments.library.absolute(), arguments.rounds)
    with tempfile.TemporaryDirectory(prefix="dupe-latency-") as folder:
        root = Path(folder)
        photos = root / "photos"
        for seed in range(arguments.pictures):
            save(make_photo(seed, (640, 480)), photos / f"p{seed}.jpg", quality=90)
        config = root / "settings.toml"
        config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n[[watch]]\npath = "photos"\n')
        service = ServiceProcess(root, config)
        state = root / "state" / "state.db"
        try:
            service.start()
            wait_for(
                lambda: query(state, "select count(*) from files where state = 'indexed'")[0][0] == arguments.pictures,
                timeout=600, interval=0.5, what="the start-up indexing",
            )
            indexed_at = time.time()
            wait_for(lambda: _last_scan_at(root) > indexed_at, timeout=1800, interval=1, what="the import's scan")
            time.sleep(5)
            seconds = []
            for round_ in range(arguments.rounds):
                seconds.append(_time_a_copy(root / "reports", round_ * 7 % arguments.pictures, photos / f"new-copy-{round_}.jpg"))
                print(f"round {round_ + 1}: {seconds[-1]:.1f} s", flush=True)
                time.sleep(12)
            _print_summary(seconds, f"{arguments.pictures} pictures already indexed")
            service.terminate()
        finally:
            service.close()
    return 0


def in_library(root: Path, rounds: int) -> int:
    from bench.million import _real_hashes, as_compared_by_this_version, restore_fingerprints
    from bench.scale import SCALE_ROOT

    size = int((root / ".complete").read_text())
    as_compared_by_this_version(root)
    real_hashes = _real_hashes(SCALE_ROOT)
    config = root / "service.toml"
    config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n[[watch]]\npath = "library"\n')
    target = root / "library" / "latency"
    service = ServiceProcess(root, config)
    try:
        started = time.time()
        service.start(timeout=1800)
        wait_for(lambda: _last_scan_at(root) > started, timeout=1800, interval=1, what="the start-up scan")
        print(f"{size:,} files: the service is up and has scanned ({time.time() - started:.0f} s)", flush=True)
        seconds = []
        for round_ in range(rounds):
            number = len(list(target.glob("*"))) if target.exists() else 0
            original = save(make_photo(5_000_000 + number, (640, 480)), target / f"original-{number}.jpg", quality=90)
            wait_for(partial(_indexed, service.state, original), timeout=600, interval=0.5, what="the original's indexing")
            indexed_at = time.time()
            wait_for(lambda: _last_scan_at(root) > indexed_at, timeout=600, interval=0.5, what="the original's scan")  # noqa: B023 (called at once)
            restore_fingerprints(root, size, real_hashes)
            time.sleep(12)  # past the debounce of the original's scan
            seconds.append(_time_a_copy(root / "reports", 5_000_000 + number, target / f"copy-{number}.jpg"))
            print(f"round {round_ + 1}: {seconds[-1]:.1f} s", flush=True)
        _print_summary(seconds, f"{size:,} files watched")
        service.terminate()
    finally:
        service.close()
    return 0


def _time_a_copy(reports: Path, seed: int, copy: Path) -> float:
    """Seconds from writing a resized, recompressed copy of picture ``seed`` until the reports list it."""
    started = time.monotonic()
    save(make_photo(seed, (640, 480)).resize((800, 600)), copy, quality=80)
    wait_for(partial(_reported, reports, copy), timeout=600, interval=0.05, what="the report")
    return time.monotonic() - started


def _print_summary(seconds: list[float], library: str) -> None:
    print(f"new duplicate -> reports: median {statistics.median(seconds):.1f} s, min {min(seconds):.1f} s, "
          f"max {max(seconds):.1f} s over {len(seconds)} rounds ({library}, default settings)")


def _indexed(state: Path, path: Path) -> bool:
    return bool(query(state, "select 1 from files where path = ? and state = 'indexed'", str(path)))


def _last_scan_at(root: Path) -> float:
    try:
        return json.loads((root / "state" / "service-status.json").read_text()).get("last_scan_at") or 0.0
    except (OSError, ValueError):
        return 0.0


def _reported(reports: Path, path: Path) -> bool:
    try:
        data = json.loads((reports / "duplicates.json").read_text())
    except (OSError, ValueError):
        return False
    return any(str(path) in group for group in data.values())


if __name__ == "__main__":
    sys.exit(main())
