"""The service's memory while idle with 10,000 files watched.

Builds 10,000 image files in 100 folders (100 distinct pictures, each in 100 byte-identical
copies, so the import takes seconds rather than an hour), runs the real service on them
with default settings, waits until everything is indexed and scanned, lets it idle, and
samples the resident set size of the service process and of its whole process tree
(the embedded backend's analysis workers are child processes). Then restarts it on the
unchanged folder, where nothing needs analysing, and samples again.

    .venv/bin/python bench/service_rss.py [--files 10000] [--idle 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.service_helpers import ServiceProcess, query, save_image, smooth_image, wait_for

MB = 1024 * 1024


def sample(pid: int, seconds: float) -> dict:
    process = psutil.Process(pid)
    own, tree, threads = [], [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        own.append(process.memory_info().rss)
        tree.append(own[-1] + sum(child.memory_info().rss for child in process.children(recursive=True)))
        threads.append(process.num_threads())
        time.sleep(1)
    return {
        "rss_mb": statistics.median(own) / MB,
        "tree_rss_mb": statistics.median(tree) / MB,
        "children": len(process.children(recursive=True)),
        "threads": max(threads),
        "cpu_percent": process.cpu_percent(interval=5),
    }


def wait_idle(root: Path, state: Path, files: int) -> None:
    wait_for(
        lambda: query(state, "select count(*) from files where state = 'indexed'")[0][0] == files,
        timeout=3600, interval=1, what="everything indexed",
    )
    done = time.time()
    wait_for(lambda: _last_scan_at(root) > done, timeout=3600, interval=1, what="the scan after the import")


def _last_scan_at(root: Path) -> float:
    try:
        return json.loads((root / "state" / "service-status.json").read_text()).get("last_scan_at") or 0.0
    except (OSError, ValueError):
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=30, help="seconds to sample once idle")
    arguments = parser.parse_args()
    pictures = 100
    with tempfile.TemporaryDirectory(prefix="dupe-rss-") as folder:
        root = Path(folder)
        masters = root / "masters"
        for seed in range(pictures):
            save_image(smooth_image(seed, (320, 240)), masters / f"{seed}.jpg", quality=85)
        photos = root / "photos"
        for index in range(arguments.files):
            target = photos / f"folder{index % 100:02d}" / f"img{index:05d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(masters / f"{index % pictures}.jpg", target)
        config = root / "settings.toml"
        config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n[[watch]]\npath = "photos"\n')
        state = root / "state" / "state.db"
        service = ServiceProcess(root, config)
        try:
            started = time.monotonic()
            service.start()
            wait_idle(root, state, arguments.files)
            print(f"imported {arguments.files} files ({pictures} distinct pictures) in {time.monotonic() - started:.0f} s")
            time.sleep(15)
            after_import = sample(service.started().pid, arguments.idle)
            print(f"idle after the import: {json.dumps(after_import)}", flush=True)
            service.terminate()

            restarted = time.time()
            service.start()
            # The start-up walk (stat only); no scan, since nothing changed since the last one.
            wait_for(lambda: "reconciled" in service.log().split("----- start 2")[-1] or time.time() - restarted > 60,
                     timeout=120, interval=1, what="the start-up walk")
            time.sleep(15)
            restart_scanned = _last_scan_at(root) > restarted
            after_restart = sample(service.started().pid, arguments.idle)
            print(f"idle after a restart on the unchanged folder (scanned again: {restart_scanned}): "
                  f"{json.dumps(after_restart)}", flush=True)
            service.terminate()
        finally:
            service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
