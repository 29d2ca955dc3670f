"""A cluster of near-identical pictures: ``.venv/bin/python -m bench.cluster [--sizes 2000,20000]``.

Issue 11, target 3: a cluster of 20,000 near-identical pictures is scanned within the
library bound (peak RSS of the scan and all its workers at most 1 GB), with correct groups.

For each size n, one real photograph (a Debian wallpaper, else a scikit-image sample) is
cut to 128 px and saved n times as PNG, picture i with one pixel changed (its position and
colour drawn from i): every two of them are duplicates, so the right answer is one group of
n. Then the real CLI runs at default settings: ``index`` of the folder, then ``scan``
(with ``--log-level debug``, whose log says how many candidate pairs each part of the
comparison proposed, and how many of them took a twin's verdict). The table gives the wall
seconds of each, the scan's CPU seconds (all processes), the candidates and those taken, the
peak RSS of the scan and all its children (bench/scale.py ``measured``), the groups found
and the largest group's size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.__main__ import CACHE
from bench.scale import MB, fresh, measured, measured_with_cpu
from bench.scan_log import candidates_and_taken

CLUSTER_ROOT = CACHE / "cluster"
SIDE = 128  # px, the long side of every picture
SOURCES = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="cluster sizes, ascending (default 2000,20000)")
    parser.add_argument("--root", type=Path, default=CLUSTER_ROOT, help=f"where the pictures and runs live (default {CLUSTER_ROOT})")
    args = parser.parse_args()
    photo = source_photo()
    print(f"photograph: {photo}", flush=True)
    rows = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        folder = build_cluster(photo, size, args.root / "pictures" / f"cluster-{size}")
        rows.append({"size": size, **run_cli(folder, args.root / "runs" / f"cluster-{size}")})
        print_table(rows)  # after every size, so an interrupted run still shows what it reached
    return 0


def source_photo() -> Path:
    """The first photograph (sorted by path) of the Debian wallpapers installed."""
    for folder in SOURCES:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"} and p.stat().st_size > 50_000)
        if found:
            return found[0]
    raise SystemExit(f"no photograph under {' or '.join(map(str, SOURCES))}: install a Debian wallpaper package (e.g. desktop-base)")


def build_cluster(photo: Path, size: int, folder: Path) -> Path:
    """``size`` PNGs of ``photo`` at ``SIDE`` px, each with one pixel changed; kept between runs."""
    done = folder / "done"
    if done.exists() and done.read_text() == f"{photo} {size}":
        return folder
    fresh(folder)
    with Image.open(photo) as opened:
        image = opened.convert("RGB")
        image.thumbnail((SIDE, SIDE))
        base = np.asarray(image).copy()
    rng = np.random.default_rng(size)
    height, width = base.shape[:2]
    for number in range(size):
        picture = base.copy()
        picture[rng.integers(height), rng.integers(width)] = rng.integers(0, 256, 3, dtype=np.uint8)
        Image.fromarray(picture).save(folder / f"{number:06d}.png")
    done.write_text(f"{photo} {size}")
    return folder


def run_cli(folder: Path, workdir: Path) -> dict:
    fresh(workdir)
    config = workdir / "settings.toml"
    config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n')
    cli = [sys.executable, "-m", "dupe_scanner", "--config", str(config)]
    index_seconds, index_peak, _ = measured([*cli, "index", "--dir", str(folder)], cwd=workdir)
    scan_seconds, scan_peak, scan, scan_cpu = measured_with_cpu([*cli, "scan", "--log-level", "debug"], cwd=workdir)
    candidates, taken = candidates_and_taken(scan.stderr + scan.stdout)
    groups = json.loads((workdir / "reports" / "duplicates.details.json").read_text())["groups"]
    return {
        "index_s": index_seconds,
        "scan_s": scan_seconds,
        "scan_cpu": scan_cpu,
        "candidates": candidates,
        "taken": taken,
        "index_peak": index_peak,
        "scan_peak": scan_peak,
        "groups": len(groups),
        "largest": max((len(group["members"]) for group in groups), default=0),
    }


def print_table(rows: list[dict]) -> None:
    print()
    print("Cluster of near-identical pictures (seconds wall time on this machine; MB: peak RSS of the CLI and all its workers;")
    print("candidates: of every part of the comparison; taken: of them, those that took a twin's verdict rather than being verified)")
    print(
        f"{'n':>7s} {'index s':>8s} {'scan s':>8s} {'scan CPU s':>10s} {'candidates':>10s} {'taken':>7s} "
        f"{'index MB':>8s} {'scan MB':>7s} {'groups':>6s} {'largest':>7s}"
    )
    for row in rows:
        print(
            f"{row['size']:7d} {row['index_s']:8.1f} {row['scan_s']:8.1f} {row['scan_cpu']:10.1f} {row['candidates']:10d} {row['taken']:7d} "
            f"{row['index_peak'] / MB:8.0f} {row['scan_peak'] / MB:7.0f} {row['groups']:6d} {row['largest']:7d}"
        )
    print("(right answer: one group of n)", flush=True)


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - started:.0f} s in all)")
    raise SystemExit(code)
