"""The detection benchmark: ``.venv/bin/python -m bench`` (``bench/run`` also installs what it needs).

1. Builds (or reuses) the labelled set under ``--root`` (see bench/dataset.py).
2. Runs dupe-scanner's embedded backend through its real CLI at its default settings:
   ``dupe-scanner --config X index --dir IMAGES`` then ``scan``, and reads duplicates.details.json.
   With ``--arrivals N``, the pictures come in N batches instead, in a random order, each
   indexed and then scanned, as the service meets a library that grows: each scan compares
   only what is new, so each picture is searched among those that came before it alone.
3. Runs imagededup's PHash, DHash, WHash and AHash in the bench's own environment; each
   method's threshold is chosen for the best F1 on the *tuning* split.
4. Prints pair precision, recall, F1 and recall per kind and strength on the *report* split
   (seeds never used to tune anything), then images per second and peak memory on 12 MP photos.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.dataset import SET_VERSION, add_real_stereo, build, build_speed_set, find_seeds
from bench.metrics import Result, best_threshold, evaluate, group_pairs, key

REPO = Path(__file__).resolve().parent.parent
CACHE = Path("/root/.cache/dupe-scanner-bench")
PEER_PYTHON = CACHE / "venv" / "bin" / "python"
PEER_METHODS = ("PHash", "DHash", "WHash", "AHash")
PEER_MAX_DISTANCE = 24
DEFAULT_THRESHOLD = 0.6
EXACT_THRESHOLD = 0.9
OURS = "dupe-scanner (embedded, default 0.6)"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=CACHE, help=f"where the sets, runs and peer environment live (default {CACHE})")
    parser.add_argument("--skip-peer", action="store_true", help="run dupe-scanner only")
    parser.add_argument("--skip-speed", action="store_true", help="leave out the 12 MP speed runs")
    parser.add_argument("--details", action="store_true", help="also list every miss and false positive of dupe-scanner")
    parser.add_argument("--reuse", action="store_true", help="score the last runs again instead of running the tools (after a change of labels)")
    parser.add_argument(
        "--reuse-peer", action="store_true", help="run dupe-scanner afresh but score imagededup's last runs again (it did not change)",
    )
    parser.add_argument(
        "--speed-only", action="store_true",
        help="score the last detection runs again (as --reuse) and run only the 12 MP speed runs afresh, every tool in the same run",
    )
    parser.add_argument(
        "--arrivals", type=int, default=1,
        help="index and scan the set in this many batches, in a random order, as a library that grows (default 1: one index, one first scan)",
    )
    args = parser.parse_args()
    if args.arrivals < 1:
        parser.error("--arrivals: at least 1 batch")

    skimage_dir = _skimage_data()
    seeds = find_seeds(skimage_dir)
    if len(seeds) < 20:
        print("too few source photographs: run bench/run (it installs the Debian wallpaper packages and the bench environment)", file=sys.stderr)
        return 2
    set_root = args.root / SET_VERSION
    print(f"labelled set: {set_root} ({len(seeds)} seed photographs)", flush=True)
    labels = build(set_root, seeds, log=lambda line: print(line, flush=True))
    add_real_stereo(set_root, skimage_dir, labels)
    labels["excluded"] = blank_families(set_root, labels)
    images = set_root / "images"
    split_sizes: defaultdict[str, int] = defaultdict(int)
    for info in labels["images"].values():
        split_sizes[info["split"]] += 1

    report: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        report.append(line)

    say(f"set: {len(labels['images'])} images from {len(seeds)} photographs; "
        f"tune split {split_sizes['tune']} images, report split {split_sizes['report']} images")
    say(f"labelled pairs: {len(labels['positives'])} positives, {len(labels['negatives'])} hard negatives (+ every cross-family pair)")
    say(f"left out of the scoring (blank pictures, no detail at all): {', '.join(labels['excluded']) or 'none'}")

    reuse_detection = args.reuse or args.speed_only
    runs = args.root / "runs" / ("labelled" if args.arrivals == 1 else f"labelled-{args.arrivals}-arrivals")
    ours, ours_run = run_dupe_scanner(images, runs, reuse=reuse_detection, arrivals=args.arrivals)
    results: dict[str, tuple[Result, str, dict]] = {}
    results[OURS] = (evaluate(labels, ours, DEFAULT_THRESHOLD, "report"), "0.6", ours_run)
    tune = evaluate(labels, ours, DEFAULT_THRESHOLD, "tune")

    peer_runs = {}
    if not args.skip_peer:
        peer_runs = run_peer(images, args.root / "runs" / "imagededup-labelled.json", PEER_MAX_DISTANCE, reuse=reuse_detection or args.reuse_peer)
        for method, (scored, run) in peer_runs.items():
            # Distances become scores (64 - distance) so "higher is more alike" for every tool.
            thresholds = [64 - d for d in range(0, PEER_MAX_DISTANCE + 1)]
            best = best_threshold(labels, scored, thresholds, "tune")
            results[f"imagededup {method}"] = (evaluate(labels, scored, best, "report"), f"dist<={64 - best}", run)

    speed = {}
    if not args.skip_speed:
        speed_images = build_speed_set(args.root, seeds)
        _, speed["dupe-scanner"] = run_dupe_scanner(speed_images[0].parent, args.root / "runs" / "speed", scan=False, reuse=args.reuse)
        if not args.skip_peer:
            peer_runs = run_peer(speed_images[0].parent, args.root / "runs" / "imagededup-speed.json", 0, reuse=args.reuse or args.reuse_peer)
            for method, (_, run) in peer_runs.items():
                speed[f"imagededup {method}"] = run

    print_tables(say, results, tune, speed, labels)
    if args.details:
        result = results[OURS][0]
        for miss in result.misses:
            say(f"MISS {miss}")
        for fp in result.false_positives:
            say(f"FALSE {fp}")
    (args.root / "last-results.txt").write_text("\n".join(report) + "\n")
    return 0


def blank_families(set_root: Path, labels: dict) -> list[str]:
    """Seeds whose original has no detail at all (a plain tile; translucent wallpapers are
    shown over grey, as dupe-scanner shows them, and are ordinary seeds).

    Every blank picture is a duplicate of every other one, so their pairs say nothing about
    detection; they stay in the folder as distractors but no pair involving them is scored.
    """
    import numpy as np
    from PIL import Image

    blank = []
    for name, info in labels["images"].items():
        if info["role"] == "original":
            with Image.open(set_root / "images" / name) as image:
                if float(np.asarray(image.convert("L").resize((128, 128)), dtype=np.float32).std()) < 1.0:
                    blank.append(info["family"])
    return sorted(blank)


def _skimage_data() -> Path | None:
    if not PEER_PYTHON.exists():
        return None
    found = subprocess.run(
        [str(PEER_PYTHON), "-c", "import skimage.data, os; print(os.path.dirname(skimage.data.__file__))"], capture_output=True, text=True,
    )
    return Path(found.stdout.strip()) if found.returncode == 0 else None


# -- running the tools ----------------------------------------------------------------------------


def measured(command: list[str], **options) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``command``; its wall time and the peak resident memory of it and all its children."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(_rss(p) for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    stdout, stderr = process.communicate()
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{stderr[-3000:]}")
    return seconds, peak, done


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def run_dupe_scanner(
    images: Path, workdir: Path, scan: bool = True, reuse: bool = False, arrivals: int = 1
) -> tuple[dict[tuple[str, str], float], dict]:
    """Index and scan ``images`` with the real CLI at default settings; pairs by image name.
    ``arrivals``: in that many batches (``arriving``), each indexed and then scanned."""
    scanned = images if arrivals == 1 else workdir / "images"
    if reuse and (workdir / "run.json").exists():
        return (_read_details(scanned, workdir) if scan else {}), json.loads((workdir / "run.json").read_text())
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    config = workdir / "settings.toml"
    config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n')
    cli = [sys.executable, "-m", "dupe_scanner", "--config", str(config)]
    count = len(_pictures(images))
    batches = f" in {arrivals} batches" if arrivals > 1 else ""
    print(f"dupe-scanner: indexing {count} images in {images}{batches}", flush=True)
    run = {"images": count, "index_seconds": 0.0, "scan_seconds": 0.0, "peak_bytes": 0, "arrivals": arrivals}
    for _ in arriving(images, scanned, arrivals):
        index_seconds, index_peak, _ = measured([*cli, "index", "--dir", str(scanned)], cwd=workdir)
        run.update(index_seconds=run["index_seconds"] + index_seconds, peak_bytes=max(run["peak_bytes"], index_peak))
        if scan:
            scan_seconds, scan_peak, _ = measured([*cli, "scan"], cwd=workdir)
            run.update(scan_seconds=run["scan_seconds"] + scan_seconds, peak_bytes=max(run["peak_bytes"], scan_peak))
    if not scan:
        del run["scan_seconds"]
        (workdir / "run.json").write_text(json.dumps(run))
        return {}, run
    (workdir / "run.json").write_text(json.dumps(run))
    scored = _read_details(scanned, workdir)
    print(f"dupe-scanner: index {run['index_seconds']:.1f}s, scan {run['scan_seconds']:.1f}s{batches}, {len(scored)} pairs reported", flush=True)
    return scored, run


ARRIVAL_ORDER_SEED = 11


def arriving(images: Path, staging: Path, batches: int) -> Iterator[None]:
    """Yields once for each of ``batches`` batches of the files under ``images``, the batch
    having been linked into ``staging`` under the same relative paths (hard links; copies
    where the two lie on other file systems). The files come in a random order, the same
    at every run. With one batch, yields once and links nothing: ``images`` is scanned."""
    if batches == 1:
        yield
        return
    files = _pictures(images)
    random.Random(ARRIVAL_ORDER_SEED).shuffle(files)
    for batch in range(batches):
        for source in files[batch * len(files) // batches : (batch + 1) * len(files) // batches]:
            target = staging / source.relative_to(images)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.hardlink_to(source)
            except OSError:
                shutil.copy2(source, target)
        yield


def _pictures(images: Path) -> list[Path]:
    """The files under ``images`` (hidden ones left out), in name order."""
    return sorted(p for p in images.rglob("*") if p.is_file() and not p.name.startswith("."))


def _read_details(images: Path, workdir: Path) -> dict[tuple[str, str], float]:
    details = json.loads((workdir / "reports" / "duplicates.details.json").read_text())
    root = images.resolve()
    name = lambda path: Path(path).resolve().relative_to(root).as_posix()  # noqa: E731
    # Every two members of a group are reported as duplicates of each other; the scores of
    # the pairs the report lists are kept, the rest count at the threshold.
    groups = (
        ([name(m["path"]) for m in group["members"]], [(name(p["first"]), name(p["second"]), p["score"]) for p in group["pairs"]])
        for group in details["groups"]
    )
    return group_pairs(groups, details["threshold"])


def run_peer(images: Path, output: Path, max_distance: int, reuse: bool = False) -> dict[str, tuple[dict[tuple[str, str], float], dict]]:
    if not PEER_PYTHON.exists() and not reuse:
        raise SystemExit(f"the imagededup environment is missing ({PEER_PYTHON}): run bench/run")
    output.parent.mkdir(parents=True, exist_ok=True)
    runs = {}
    for method in PEER_METHODS:
        print(f"imagededup {method}: {images}", flush=True)
        part = output.with_suffix(f".{method}.json")
        meta = output.with_suffix(f".{method}.run.json")
        if not (reuse and meta.exists()):
            seconds, peak, _ = measured(
                [str(PEER_PYTHON), str(REPO / "bench" / "peer_imagededup.py"), str(images), str(part), str(max_distance), method],
            )
            meta.write_text(json.dumps({"peak_bytes": peak, "wall_seconds": seconds}))
        found = json.loads(part.read_text())[method]
        scored = {key(a, b): float(64 - d) for a, b, d in found["pairs"]}
        runs[method] = (scored, {"images": found["images"], "index_seconds": found["seconds"], **json.loads(meta.read_text())})
    return runs


# -- the table ------------------------------------------------------------------------------------


def print_tables(say, results, tune: Result, speed: dict, labels: dict) -> None:
    say()
    say("Detection on the report split (thresholds: dupe-scanner its default; imagededup its best F1 on the tune split)")
    say(f"{'tool':38s} {'threshold':>10s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'FP':>5s} {'hard-neg>=0.6':>13s} {'hard-neg>=0.9':>13s}")
    for name, (result, threshold, _) in results.items():
        hard_exact = str(result.hard_negative_fp_exact) if name.startswith("dupe") else "-"
        say(f"{name:38s} {threshold:>10s} {result.precision:9.4f} {result.recall:7.4f} {result.f1:6.4f} {result.fp:5d} "
            f"{result.hard_negative_fp_near:>8d}/{result.hard_negatives:<4d} {hard_exact:>13s}")
    say(f"(dupe-scanner on the tune split: precision {tune.precision:.4f}, recall {tune.recall:.4f}, F1 {tune.f1:.4f})")
    say()
    names = list(results)
    short = ["ours"] + [n.split()[-1] for n in names[1:]]
    say("Recall per variation kind (report split)")
    say(f"{'kind':14s} {'pairs':>6s} " + " ".join(f"{s:>7s}" for s in short))
    kinds = list(results[names[0]][0].recall_by_kind)
    for kind in kinds:
        cells = []
        for name in names:
            found, total = results[name][0].recall_by_kind.get(kind, (0, 0))
            cells.append(f"{found / total:7.3f}" if total else "      -")
        say(f"{kind:14s} {results[names[0]][0].recall_by_kind[kind][1]:6d} " + " ".join(cells))
    say()
    say("Recall per variation kind and strength (report split)")
    say(f"{'kind/strength':30s} {'pairs':>6s} " + " ".join(f"{s:>7s}" for s in short))
    for strength in results[names[0]][0].recall_by_strength:
        cells = []
        for name in names:
            found, total = results[name][0].recall_by_strength.get(strength, (0, 0))
            cells.append(f"{found / total:7.3f}" if total else "      -")
        label = "/".join(strength)
        say(f"{label:30s} {results[names[0]][0].recall_by_strength[strength][1]:6d} " + " ".join(cells))
    say()
    say("Speed on the labelled set (images of at most 1600 px) and on 12 MP photographs (4000 x 3000 JPEG)")
    say(f"{'tool':26s} {'labelled img/s':>15s} {'12MP img/s':>11s} {'peak memory 12MP':>17s} {'peak memory labelled':>21s}")
    for name, (_, _, run) in results.items():
        label = name.split(" (")[0]
        fast = speed.get(label)
        fast_rate = f"{fast['images'] / fast['index_seconds']:11.2f}" if fast else "          -"
        fast_peak = f"{fast['peak_bytes'] / 2**20:14.0f} MB" if fast else "                -"
        say(f"{label:26s} {run['images'] / run['index_seconds']:15.2f} {fast_rate} {fast_peak} {run['peak_bytes'] / 2**20:18.0f} MB")
    say("(dupe-scanner: `index` wall time, decoding and analysis included, all cores; imagededup: encode_images with one worker per core)")


if __name__ == "__main__":
    raise SystemExit(main())
