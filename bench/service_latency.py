"""How long from a new duplicate being written to the reports showing it, default settings.

Starts the real service (``python -m dupe_scanner run``) on a folder of photo-like pictures,
waits until they are indexed and scanned, then, several times, writes a resized, recompressed copy
of one of them and times until ``duplicates.json`` lists it. Default settings
throughout (stable_seconds 5, debounce_seconds 10, workers = cores).

    .venv/bin/python bench/service_latency.py [--pictures 40] [--rounds 3]
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
    arguments = parser.parse_args()
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
                seed = round_ * 7 % arguments.pictures
                copy = photos / f"new-copy-{round_}.jpg"
                started = time.monotonic()
                save(make_photo(seed, (640, 480)).resize((800, 600)), copy, quality=80)
                wait_for(partial(_reported, root / "reports", copy), timeout=300, interval=0.05, what="the report")
                seconds.append(time.monotonic() - started)
                print(f"round {round_ + 1}: {seconds[-1]:.1f} s", flush=True)
                time.sleep(12)
            print(f"new duplicate -> reports: median {statistics.median(seconds):.1f} s, "
                  f"min {min(seconds):.1f} s, max {max(seconds):.1f} s over {len(seconds)} rounds "
                  f"({arguments.pictures} pictures already indexed, default settings)")
            service.terminate()
        finally:
            service.close()
    return 0


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
