"""Where a first scan's CPU goes, stage by stage, and how far it could fall.

    .venv/bin/python -m bench.scan_cost --library DIR [--library DIR ...]

Each library (a folder of pictures, such as bench/scale's ``libraries/library-N``) is
indexed into a new state with the real command line, and then scanned for the first time:
issue 11's measure is the first scan's CPU over the index's, both of every process. While
the scan runs, the bench reads the CPU of the scanning process and of each of its analysis
workers every ``POLL_SECONDS``, and the scan's debug log, which marks each stage's start and
end (``scanning.STAGE_STARTS``): the CPU between two marks is that stage's. The stage
"writing interim reports" lies within "comparing images", between its parts.

One table: for each library and stage, its wall seconds and the CPU of the main process (the
candidate search, storing pairs, grouping, the reports and their thumbnails, in its threads)
and of the workers (verification); then the whole scan's CPU over the index's, and the same
ratio without the workers' CPU: what a first scan would cost with a verifier that cost
nothing, the least any change to verification alone can reach.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.__main__ import _rss
from bench.scale import measured_with_cpu, process_cpu
from dupe_scanner.scanning import STAGE_ENDS, STAGE_STARTS

POLL_SECONDS = 0.05
START, END = "start (imports, the state opened)", "end (the scan recorded, exit)"
BETWEEN = "between stages"
STAGE_START = re.compile(re.escape(STAGE_STARTS).replace("%s", "(.+)") + r"\s*$")
STAGE_END = re.compile(re.escape(STAGE_ENDS).replace("%s", "(.+)") + r"\s*$")


@dataclass
class Sample:
    """The scan's CPU so far, as read at ``at`` (monotonic seconds): its main process, and its other processes."""

    at: float
    main: float
    workers: float


@dataclass
class StageCost:
    name: str
    seconds: float = 0.0
    main: float = 0.0
    workers: float = 0.0


@dataclass
class ScanCost:
    library: Path
    pictures: int
    index_cpu: float
    peak: int
    stages: list[StageCost] = field(default_factory=list)

    @property
    def main(self) -> float:
        return sum(stage.main for stage in self.stages)

    @property
    def workers(self) -> float:
        return sum(stage.workers for stage in self.stages)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, action="append", required=True, help="a folder of pictures (repeat for more)")
    options = parser.parse_args()
    costs = [measure(library) for library in options.library]
    print_table(costs)
    return 0


def measure(library: Path) -> ScanCost:
    """Index ``library`` into a new state, then scan it for the first time, stage by stage."""
    with tempfile.TemporaryDirectory(prefix="scan-cost-") as scratch:
        workdir = Path(scratch)
        config = workdir / "settings.toml"
        config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n')
        cli = [sys.executable, "-m", "dupe_scanner", "--config", str(config)]
        *_, index_cpu = measured_with_cpu([*cli, "index", "--dir", str(library)], cwd=workdir)
        started = time.monotonic()
        samples, marks, peak, ended = _run_sampled([*cli, "--log-level", "debug", "scan"], workdir)
        cost = ScanCost(library, pictures_in(library), index_cpu, peak)
        cost.stages = stage_costs(samples, marks, started, ended)
    return cost


def pictures_in(library: Path) -> int:
    """The files of ``library``, less hidden ones (bench/scale marks a finished library with ``.complete``)."""
    return sum(1 for path in library.rglob("*") if path.is_file() and not path.name.startswith("."))


def _run_sampled(command: list[str], workdir: Path) -> tuple[list[Sample], list[tuple[float, str, bool]], int, float]:
    """Run ``command``, reading its processes' CPU and its stage marks as it goes.

    Returns the CPU samples, the marks (when, which stage, whether it starts), the peak RSS
    of all its processes together, and when it ended.
    """
    marks: list[tuple[float, str, bool]] = []
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as log_copy:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=workdir)
        reader = threading.Thread(target=_read_marks, args=(process, marks, log_copy), daemon=True)
        reader.start()
        samples, peak = _sample_until_done(process)
        ended = time.monotonic()
        reader.join()
        if process.returncode != 0:
            log_copy.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{log_copy.read()[-3000:]}")
    return samples, marks, peak, ended


def _read_marks(process: subprocess.Popen, marks: list[tuple[float, str, bool]], log_copy) -> None:
    """Each stage mark of the scan's log, timed as it is read (the log's own clock has whole seconds)."""
    assert process.stderr is not None
    for line in process.stderr:
        log_copy.write(line)
        now = time.monotonic()
        if started := STAGE_START.search(line):
            marks.append((now, started.group(1), True))
        elif finished := STAGE_END.search(line):
            marks.append((now, finished.group(1), False))


def _sample_until_done(process: subprocess.Popen) -> tuple[list[Sample], int]:
    """The CPU of ``process`` and of its descendants every ``POLL_SECONDS`` until it ends, and their peak RSS together.

    A descendant's CPU is kept as last read after it ends (the analysis workers' parent,
    multiprocessing's fork server, never waits for them, so no rusage ever counts them).
    """
    watched = psutil.Process(process.pid)
    main_cpu = 0.0
    others: dict[int, float] = {}
    samples = [Sample(time.monotonic(), 0.0, 0.0)]
    peak = 0
    while process.poll() is None:
        try:
            children = watched.children(recursive=True)
            main_cpu = max(main_cpu, process_cpu(watched))
            for child in children:
                others[child.pid] = max(others.get(child.pid, 0.0), process_cpu(child))
            peak = max(peak, sum(_rss(member) for member in [watched, *children]))
        except psutil.Error:
            pass
        samples.append(Sample(time.monotonic(), main_cpu, sum(others.values())))
        time.sleep(POLL_SECONDS)
    samples.append(Sample(time.monotonic(), main_cpu, sum(others.values())))
    return samples, peak


def stage_costs(samples: list[Sample], marks: list[tuple[float, str, bool]], started: float, ended: float) -> list[StageCost]:
    """The wall seconds and CPU of each stage, from the samples taken between its marks.

    Time between two marks goes to the innermost stage open then (interim reports to
    themselves, not to the comparison around them); with none open, to ``START`` before the
    first stage, to ``END`` after the last, and to ``BETWEEN`` otherwise. Stages are listed
    in the order they first started.
    """
    costs: dict[str, StageCost] = {START: StageCost(START)}
    first_start = min((at for at, _, starts in marks if starts), default=ended)
    last_end = max((at for at, _, starts in marks if not starts), default=ended)
    open_stages: list[str] = []
    edges = [(started, "", True), *marks, (ended, "", False)]
    for (begin, name, starts), (end, *_) in itertools.pairwise(edges):
        if name and starts:
            open_stages.append(name)
        elif name in open_stages:
            open_stages.remove(name)
        if open_stages:
            current = open_stages[-1]
        else:
            current = START if begin < first_start else END if begin >= last_end else BETWEEN
        cost = costs.setdefault(current, StageCost(current))
        cost.seconds += end - begin
        cost.main += _cpu_at(samples, end, "main") - _cpu_at(samples, begin, "main")
        cost.workers += _cpu_at(samples, end, "workers") - _cpu_at(samples, begin, "workers")
    return [costs.pop(START), *(cost for name, cost in costs.items() if name != END), *([costs[END]] if END in costs else [])]


def _cpu_at(samples: list[Sample], moment: float, kind: str) -> float:
    """The CPU read at ``moment``, taken between the samples on either side of it."""
    before = max((sample for sample in samples if sample.at <= moment), key=lambda sample: sample.at, default=samples[0])
    after = min((sample for sample in samples if sample.at >= moment), key=lambda sample: sample.at, default=samples[-1])
    low, high = getattr(before, kind), getattr(after, kind)
    if after.at <= before.at:
        return high
    return low + (high - low) * (moment - before.at) / (after.at - before.at)


def print_table(costs: list[ScanCost]) -> None:
    print("Where a first scan's CPU goes (CPU seconds of the main process and of its analysis workers; wall seconds)")
    print(f"{'library':>24} {'stage':>34} {'wall s':>8} {'main CPU s':>10} {'workers CPU s':>13} {'of the scan':>11}")
    for cost in costs:
        total = cost.main + cost.workers
        for stage in cost.stages:
            if stage.name == BETWEEN and stage.seconds < 0.05 and stage.main + stage.workers < 0.05:
                continue  # the moment from one stage to the next
            share = (stage.main + stage.workers) / total if total else 0.0
            print(f"{cost.library.name:>24} {stage.name:>34} {stage.seconds:8.1f} {stage.main:10.1f} {stage.workers:13.1f} {share:11.1%}")
    print()
    print("The first scan against the index it follows (CPU of every process; the issue asks for 0.2 at most)")
    header = (
        f"{'library':>24} {'pictures':>8} {'index CPU s':>11} {'scan CPU s':>10} {'scan / index':>12} "
        f"{'without verification':>20} {'peak MB':>8}"
    )
    print(header)
    for cost in costs:
        total = cost.main + cost.workers
        ratio = total / cost.index_cpu if cost.index_cpu else float("nan")
        bound = cost.main / cost.index_cpu if cost.index_cpu else float("nan")
        print(
            f"{cost.library.name:>24} {cost.pictures:8d} {cost.index_cpu:11.1f} {total:10.1f} {ratio:12.2f} "
            f"{bound:20.2f} {cost.peak / 2**20:8.0f}"
        )
    print("(without verification: the scan's CPU less its workers', over the index's: the least a first scan could cost")
    print(" with a verifier that cost nothing, the candidate search, grouping and reports as they are)")


if __name__ == "__main__":
    sys.exit(main())
