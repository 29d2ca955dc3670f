"""Library scale: ``.venv/bin/python -m bench.scale`` (``bench/scale`` also installs what it needs).

For each library size N (libraries of real pictures with 5 % planted copies, see
bench/scale_library.py), in one run:

- dupe-scanner through its real CLI at default settings: ``index`` of the library, the first
  ``scan``, ``index`` of 100 added pictures (50 new, 50 copies; not timed) and ``scan``, then
  ``scan`` once more with nothing new. Peak RSS of the CLI and all its workers, the state's size.
- imagededup PHash (its default distance 10), end to end on the library: it keeps no state.
- findimagedupes with a fingerprint database: the library, then the library with the 100
  added pictures (only those are fingerprinted), then again with nothing new.

Pair precision and recall are those of the first scan of the library: every two members of
a reported group count as a reported pair, right when both show the same tile; recall is over
the planted (tile, copy) pairs (bench/metrics.py ``evaluate``). Tiles of sky or plain colour
are in the library but no pair with them is scored; nor is a pair of two tiles of a repeating
pattern that show the same pixels (bench/scale_repeats.py: the labels are wrong there).

``--simulate N[,N...]`` then runs the fingerprint-level simulation (bench/scale_simulate.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.__main__ import CACHE, PEER_PYTHON, REPO, _read_details, _rss, _skimage_data
from bench.metrics import evaluate, key
from bench.scale_library import POOL_VERSION, TILE_SIDES, Pool
from bench.scale_repeats import RepeatCheck

SCALE_ROOT = CACHE / "scale"
PHASH_DISTANCE = 10  # imagededup's own default for PHash
TOOLS = ("dupe-scanner", "imagededup PHash", "findimagedupes")
MB = 2**20


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000,16000", help="library sizes, ascending (default 1000,4000,16000)")
    parser.add_argument("--max-seconds", type=float, default=3600, help="start no new library size past this many seconds (default 3600)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"which tools (default {','.join(TOOLS)})")
    parser.add_argument("--reuse", action="store_true", help="print the last results of each size and tool instead of running them again")
    parser.add_argument("--simulate", default="", help="also the fingerprint simulation at these sizes, e.g. 10000,100000,1000000")
    parser.add_argument("--simulate-base", type=int, default=2000, help="real pictures indexed for the simulation (default 2000)")
    parser.add_argument(
        "--simulate-points", type=int, help="keypoints of each distinct synthetic content (default: as many as the real picture it is shaped on)"
    )
    parser.add_argument("--pool", default=POOL_VERSION, choices=sorted(TILE_SIDES), help=f"which tiles of the photographs (default {POOL_VERSION})")
    parser.add_argument("--root", type=Path, default=SCALE_ROOT, help=f"where the pictures, runs and results live (default {SCALE_ROOT})")
    args = parser.parse_args()

    started = time.perf_counter()
    pool = Pool(args.root, _skimage_data(), log=lambda line: print(line, flush=True), version=args.pool)
    low, high = TILE_SIDES[args.pool]
    print(f"pool: {len(pool.tiles)} tiles ({low} to {high} px) of real photographs; libraries of up to {pool.capacity} pictures", flush=True)
    rows = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        if size > pool.capacity:
            print(f"N={size}: more than the {pool.capacity} distinct pictures the photographs give; stopping", flush=True)
            break
        if time.perf_counter() - started > args.max_seconds:
            print(f"N={size}: not started, past --max-seconds", flush=True)
            break
        rows += run_size(pool, size, args.tools.split(","), pool.folder / "runs", args.reuse)
        print_table(rows)  # after every size, so an interrupted run still shows what it reached
    if args.simulate:
        from bench.scale_simulate import simulate

        simulate(
            [int(s) for s in args.simulate.split(",")], pool, args.simulate_base, args.root / "simulation", started, args.max_seconds,
            args.simulate_points,
        )
    return 0


def run_size(pool: Pool, size: int, tools: list[str], runs: Path, reuse: bool) -> list[dict]:
    names = pool.sequence(size)
    added = pool.added(names)
    library = pool.link(names, runs.parent / "libraries" / f"library-{size}")
    extra = pool.link(added, runs.parent / "libraries" / f"added-{size}")
    labels = pool.scoring_labels(names)
    repeats = RepeatCheck(pool.seeds)
    rows = []
    for tool in tools:
        saved = runs / f"{tool.replace(' ', '-')}-{size}.json"
        if reuse and saved.exists():
            row = leave_out_repeats(json.loads(saved.read_text()), repeats)
        else:
            print(f"N={size}: {tool}", flush=True)
            row = RUNNERS[tool](library, extra, runs / f"{tool.replace(' ', '-')}-{size}")
            scored = {pair: 1.0 for pair in row.pop("pairs")}
            result = evaluate(labels, scored, 0.5, None)
            row.update(tool=tool, size=size, precision=result.precision, recall=result.recall, tp=result.tp, fp=result.fp, positives=result.positives)
            # Kept for looking into: which pairs were wrong, which copies were missed.
            row.update(
                false_positives=[(a, b, pool.labels[a]["family"], pool.labels[b]["family"]) for a, b, _ in result.false_positives],
                misses=result.misses,
            )
            row = leave_out_repeats(row, repeats)
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(row))
        rows.append(row)
    return rows


def leave_out_repeats(row: dict, repeats: RepeatCheck) -> dict:
    """``row`` with its wrong pairs of two tiles showing the same pixels taken out of the scoring
    (a repeating pattern: see bench/scale_repeats.py); they are counted in ``repeats``."""
    wrong = [pair for pair in row["false_positives"] if not repeats.same_pixels(pair[2], pair[3])]
    left_out = len(row["false_positives"]) - len(wrong)
    if not left_out:
        return row | {"repeats": row.get("repeats", 0)}
    fp = row["fp"] - left_out
    precision = row["tp"] / (row["tp"] + fp) if row["tp"] + fp else 1.0
    return row | {"false_positives": wrong, "fp": fp, "precision": precision, "repeats": row.get("repeats", 0) + left_out}


# -- dupe-scanner -----------------------------------------------------------------------------------


def run_dupe_scanner(library: Path, extra: Path, workdir: Path) -> dict:
    fresh(workdir)
    config = workdir / "settings.toml"
    config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n')
    cli = [sys.executable, "-m", "dupe_scanner", "--config", str(config)]
    index_seconds, index_peak, _, index_cpu = measured_with_cpu([*cli, "index", "--dir", str(library)], cwd=workdir)
    scan_seconds, scan_peak, _, scan_cpu = measured_with_cpu([*cli, "scan"], cwd=workdir)
    pairs = list(_read_details(library, workdir))
    measured([*cli, "index", "--dir", str(extra)], cwd=workdir)  # not timed: the added pictures' analysis
    added_seconds, added_peak, _ = measured([*cli, "scan"], cwd=workdir)
    unchanged_seconds, unchanged_peak, _ = measured([*cli, "scan"], cwd=workdir)
    return {
        "index_s": index_seconds,
        "index_cpu_s": index_cpu,
        "scan_s": scan_seconds,
        "scan_cpu_s": scan_cpu,
        "added_s": added_seconds,
        "unchanged_s": unchanged_seconds,
        "index_peak": index_peak,
        "scan_peak": max(scan_peak, added_peak, unchanged_peak),
        "state_bytes": folder_bytes(workdir / "state"),
        "pairs": pairs,
    }


# -- peers ------------------------------------------------------------------------------------------


def run_imagededup(library: Path, extra: Path, workdir: Path) -> dict:
    """PHash end to end (encoding and search, one worker per core); it keeps no state to rescan from."""
    if not PEER_PYTHON.exists():
        raise SystemExit(f"the imagededup environment is missing ({PEER_PYTHON}): run bench/scale")
    fresh(workdir)
    output = workdir / "pairs.json"
    seconds, peak, _, cpu = measured_with_cpu(
        [str(PEER_PYTHON), str(REPO / "bench" / "peer_imagededup.py"), str(library), str(output), str(PHASH_DISTANCE), "PHash"],
    )
    found = json.loads(output.read_text())["PHash"]
    return {"scan_s": seconds, "scan_cpu_s": cpu, "scan_peak": peak, "pairs": [key(a, b) for a, b, _ in found["pairs"]]}


def run_findimagedupes(library: Path, extra: Path, workdir: Path) -> dict:
    """findimagedupes at its default threshold, its fingerprints kept in a database between runs."""
    fresh(workdir)
    database = workdir / "fingerprints.db"
    command = ["findimagedupes", "--quiet", "--fingerprints", str(database), "--recurse"]
    scan_seconds, scan_peak, first, scan_cpu = measured_with_cpu([*command, str(library)])
    added_seconds, added_peak, _ = measured([*command, str(library), str(extra)])
    unchanged_seconds, unchanged_peak, _ = measured([*command, str(library), str(extra)])
    return {
        "scan_s": scan_seconds,
        "scan_cpu_s": scan_cpu,
        "added_s": added_seconds,
        "unchanged_s": unchanged_seconds,
        "scan_peak": max(scan_peak, added_peak, unchanged_peak),
        "state_bytes": database.stat().st_size,
        "pairs": group_pairs(first.stdout),
    }


def group_pairs(output: str) -> list[tuple[str, str]]:
    """findimagedupes prints one group a line, its files separated by spaces (ours have none in their names)."""
    pairs = []
    for line in output.splitlines():
        members = sorted(Path(path).name for path in line.split())
        pairs += [key(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
    return pairs


RUNNERS = {"dupe-scanner": run_dupe_scanner, "imagededup PHash": run_imagededup, "findimagedupes": run_findimagedupes}


# -- helpers ----------------------------------------------------------------------------------------


def fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def measured(command: list[str], **options) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``command``; its wall time and the peak RSS of it and all its children (polled every 0.2 s).

    As bench/__main__.py's ``measured``, but the output goes to files, not pipes: a scan of a
    large library logs more than a pipe holds, and would wait forever for it to be read.
    """
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, **options)
        peak = peak_rss_until_done(process)
        seconds = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        done = subprocess.CompletedProcess(command, process.returncode, stdout.read(), stderr.read())
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, peak, done


def peak_rss_until_done(process: subprocess.Popen) -> int:
    """The peak RSS of ``process`` and its children until it ends; their CPU time goes to ``TREE_CPU``."""
    watched = psutil.Process(process.pid)
    peak = 0
    cpu_by_process: dict[int, float] = {}
    while process.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(_rss(p) for p in tree))
            for member in tree:
                cpu_by_process[member.pid] = max(cpu_by_process.get(member.pid, 0.0), process_cpu(member))
        except psutil.Error:
            pass
        time.sleep(0.2)
    TREE_CPU[0] += sum(cpu_by_process.values())
    return peak


# CPU seconds of every measured process tree so far, read as polled: getrusage's children
# times miss the analysis workers (their parent, multiprocessing's fork server, is never
# waited for), and the machine is shared, so wall time moves with the others' load.
TREE_CPU = [0.0]


def process_cpu(process: psutil.Process) -> float:
    """User and system CPU seconds of ``process`` so far; 0 once it cannot be read."""
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def measured_with_cpu(command: list[str], **options) -> tuple[float, int, subprocess.CompletedProcess, float]:
    """``measured``, and the CPU seconds the command and all its children took."""
    cpu_before = children_cpu_seconds()
    seconds, peak, finished = measured(command, **options)
    return seconds, peak, finished, children_cpu_seconds() - cpu_before


def children_cpu_seconds() -> float:
    """CPU seconds of the measured runs so far (at most 0.2 s of each process's end is missed)."""
    return TREE_CPU[0]


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def scan_against_index(row: dict) -> str:
    """The first scan's CPU seconds over the index's it follows, or "-" where the tool has no index."""
    if not row.get("index_cpu_s") or "scan_cpu_s" not in row:
        return "-"
    return f"{row['scan_cpu_s'] / row['index_cpu_s']:.2f}"


def print_table(rows: list[dict]) -> None:
    seconds = lambda row, column: f"{row[column]:.1f}" if column in row else "-"  # noqa: E731
    mb = lambda row, column: f"{row[column] / MB:.0f}" if column in row else "-"  # noqa: E731
    print()
    print("Library scale (seconds wall time on this machine; MB: peak RSS of the tool and all its children)")
    header = (
        f"{'N':>7s} {'tool':16s} {'index s':>8s} {'CPU s':>7s} {'1st scan s':>10s} {'CPU s':>7s} {'CPU/index':>9s} {'+100 scan s':>11s} "
        f"{'no-change s':>11s} {'index MB':>8s} {'scan MB':>7s} {'state MB':>8s} {'precision':>9s} {'recall':>6s} {'pairs':>9s} {'repeats':>7s}"
    )
    print(header)
    for row in rows:
        pairs = f"{row['tp']}+{row['fp']}/{row['positives']}"
        state = f"{row['state_bytes'] / MB:.1f}" if "state_bytes" in row else "-"
        print(
            f"{row['size']:7d} {row['tool']:16s} {seconds(row, 'index_s'):>8s} {seconds(row, 'index_cpu_s'):>7s} {seconds(row, 'scan_s'):>10s} "
            f"{seconds(row, 'scan_cpu_s'):>7s} {scan_against_index(row):>9s} {seconds(row, 'added_s'):>11s} {seconds(row, 'unchanged_s'):>11s} "
            f"{mb(row, 'index_peak'):>8s} {mb(row, 'scan_peak'):>7s} {state:>8s} {row['precision']:9.3f} {row['recall']:6.3f} {pairs:>9s} "
            f"{row.get('repeats', 0):7d}"
        )
    print("(CPU s: CPU seconds of the index and of the first scan, all processes. CPU/index: the first scan's CPU over the index's,")
    print(" the issue's measure of a scan's cost, read on CPU: a shared machine's speed moves both alike, its wall seconds do not)")
    print("(pairs: right + wrong reported pairs / planted pairs. imagededup: one run end to end, no state; "
          "findimagedupes: one command fingerprints and compares)")
    print("(repeats: reported pairs of two tiles of a repeating pattern that show the same pixels, "
          "left out of the scoring; see bench/scale_repeats.py)")
    print(flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
