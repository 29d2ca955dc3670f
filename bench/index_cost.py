"""What indexing costs, by this code and by an earlier version, on the same libraries.

    .venv/bin/python -m bench.index_cost --library DIR [--library DIR ...] [--before PYTHON] [--rounds 2]

Each library (a folder of pictures, such as bench/scale's ``libraries/library-N``) is indexed
into a new state with the real command line: wall seconds, the CPU of the command and of all
its analysis workers (bench/scale.py ``measured_with_cpu``) and the peak RSS of all of them.

``--before PYTHON``: the interpreter of an environment with an earlier version, or a script
that runs one (for a git worktree of the earlier commit, a script that sets ``PYTHONPATH`` to
it and execs this checkout's ``.venv/bin/python``). Each round then indexes every library with
both, this code first in odd rounds and the earlier version first in even ones, so a shared
machine's drift falls on both alike. The last table gives each version's mean and the ratio
of this code's CPU to the earlier one's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from bench.scale import measured_with_cpu
from bench.scan_cost import pictures_in

THIS = "now"
BEFORE = "before"


@dataclass(frozen=True)
class IndexRun:
    library: Path
    pictures: int
    version: str
    round: int
    seconds: float
    cpu: float
    peak: int

    @property
    def cpu_ms_a_picture(self) -> float:
        return 1000 * self.cpu / self.pictures if self.pictures else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, action="append", required=True, help="a folder of pictures (repeat for more)")
    parser.add_argument("--before", type=Path, help="the python of an environment with an earlier version (or a script that runs one)")
    parser.add_argument("--rounds", type=int, default=2, help="times each version indexes each library (default 2)")
    options = parser.parse_args()
    versions = [(THIS, Path(sys.executable))] + ([(BEFORE, options.before)] if options.before else [])
    runs = []
    for round_number in range(1, options.rounds + 1):
        in_turn = versions if round_number % 2 else versions[::-1]
        for library in options.library:
            for version, python in in_turn:
                runs.append(index_once(library, version, python, round_number))
                print(f"  {library.name} {version} round {round_number}: {runs[-1].cpu:.1f} CPU s", flush=True)
    print_table(runs)
    return 0


def index_once(library: Path, version: str, python: Path, round_number: int) -> IndexRun:
    """``library`` indexed into a new state by ``python``'s dupe_scanner."""
    with tempfile.TemporaryDirectory(prefix="index-cost-") as scratch:
        workdir = Path(scratch)
        config = workdir / "settings.toml"
        config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n')
        # A failed index raises, with its log's end.
        command = [str(python), "-m", "dupe_scanner", "--config", str(config), "index", "--dir", str(library)]
        seconds, peak, _, cpu = measured_with_cpu(command, cwd=workdir)
    return IndexRun(library, pictures_in(library), version, round_number, seconds, cpu, peak)



def print_table(runs: list[IndexRun]) -> None:
    print()
    print("Indexing into a new state (CPU of the command and all its workers; MB: their peak RSS together)")
    print(f"{'library':>24} {'pictures':>8} {'version':>10} {'round':>5} {'wall s':>7} {'CPU s':>7} {'CPU ms a picture':>16} {'peak MB':>8}")
    for run in runs:
        print(
            f"{run.library.name:>24} {run.pictures:8d} {run.version:>10} {run.round:5d} {run.seconds:7.1f} {run.cpu:7.1f} "
            f"{run.cpu_ms_a_picture:16.1f} {run.peak / 2**20:8.0f}"
        )
    print()
    print("Means over the rounds")
    print(f"{'library':>24} {'version':>10} {'CPU s':>7} {'CPU ms a picture':>16} {'now / before':>13}")
    for library in dict.fromkeys(run.library for run in runs):
        of_library = [run for run in runs if run.library == library]
        versions = dict.fromkeys(run.version for run in of_library)
        means = {version: mean(run.cpu for run in of_library if run.version == version) for version in versions}
        for version, cpu in means.items():
            ratio = f"{means[THIS] / cpu:.3f}" if version == BEFORE and cpu else ""
            print(f"{library.name:>24} {version:>10} {cpu:7.1f} {1000 * cpu / of_library[0].pictures:16.1f} {ratio:>13}")


if __name__ == "__main__":
    sys.exit(main())
