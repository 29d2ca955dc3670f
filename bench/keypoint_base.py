"""The keypoint base at library sizes no state on this disk holds: 100,000 to 1,000,000 pictures.

``python -m bench.keypoint_base [--sizes 100000,1000000] [--peer-in-one-go]`` prints one table.

A first scan builds the keypoint base over every picture's descriptors, writes it beside the
state, and searches it with each part's pictures. A million pictures' full fingerprints would
take 40 GB of state, so this measures those two steps alone, through the real
``KeypointStore`` and ``keypoint_candidates``, on descriptors made as bench/scale's
simulation makes a distinct content's (``drawn_points``: points drawn from four real pictures
of the simulation's base, bits flipped), made again from each picture's number whenever the
store asks for them, as it would read them from the state:

1. *build*: ``KeypointStore.points`` with no base kept (a first scan): seconds, CPU seconds,
   and the peak RSS of the process (sampled every 0.2 s; faiss runs in it, there are no
   workers), and the base's size on disk;
2. *search*: one part of a first scan (``--part`` pictures, the newest, against every older
   one): the CPU seconds a picture and the peak RSS, the base read from its file as the next
   part reads it; twice, on the same base: with every picture's hashes, as a scan searches
   (a descriptor close to many points whose owners' hashes are no family is commonplace at
   once, without the deep lookup: ``candidates.FAMILY_SHARE``), and without them, as this
   bench searched before. Each picture's hashes are its shape donor's with 12 to 32 bits
   flipped in each, as the simulation makes a distinct content's (``DISTINCT_FLIPS``).

Each size runs in a process of its own. ``--peer-in-one-go`` runs each size again with the
base built in one go (``SHARD_POINTS`` past its size), as before shards, in the same run.
``--points 160`` gives every picture 160 points, as many as the analysis keeps of a camera's
photograph (the simulation's base is tiles of 104 to 336 px: 38 a picture), drawn from as
many real pictures (of those with 10 or more) as that takes, 15 from each at most.
Needs the simulation's base (``bench/scale --simulate``, which indexes it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from bench.scale_simulate import DISTINCT_FLIPS, POINTS_A_DONOR, drawn_points, read_real

CACHE = Path.home() / ".cache" / "dupe-scanner-bench"
BASE = CACHE / "scale" / "simulation" / "base-2000"  # bench/scale --simulate indexes it (bench.incremental: base-1000)
SCRATCH = CACHE / "keypoint-base"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keypoint_base", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="library sizes (default 100000,1000000)")
    parser.add_argument("--part", type=int, default=2000, help="pictures searched, the newest (default 2000)")
    parser.add_argument("--peer-in-one-go", action="store_true", help="each size again, the base built in one go")
    parser.add_argument("--base", type=Path, default=BASE, help=f"the simulation's indexed base (default {BASE})")
    parser.add_argument("--points", type=int, help="points a picture (default: as the simulation draws them, 38 on average)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: measure this size, print JSON
    parser.add_argument("--in-one-go", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(measure(options.base, options.one, options.part, options.in_one_go, options.points)), flush=True)
        return 0
    rows = []
    for size in (int(s) for s in options.sizes.split(",")):
        for in_one_go in (False, True) if options.peer_in_one_go else (False,):
            rows.append(run_child(options.base, size, options.part, in_one_go, options.points))
            print_table(rows)
    return 0


def run_child(base: Path, size: int, part: int, in_one_go: bool, points: int | None) -> dict:
    command = [sys.executable, "-m", "bench.keypoint_base", "--base", str(base), "--one", str(size), "--part", str(part)]
    command += ["--points", str(points)] if points else []
    done = subprocess.run([*command, *(["--in-one-go"] if in_one_go else [])], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"size {size}: the measurement failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class PeakRss:
    """This process's peak RSS, sampled every 0.2 s from when ``reset`` was last called."""

    def __init__(self) -> None:
        self.process, self.peak, self.running = psutil.Process(), 0, True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.2)

    def reset(self) -> int:
        peak, self.peak = max(self.peak, self.process.memory_info().rss), 0
        return peak


def measure(base: Path, size: int, part: int, in_one_go: bool, points_a_picture: int | None = None) -> dict:
    import dupe_scanner.backends.keypoint_store as keypoint_store
    from dupe_scanner.analysis.candidates import keypoint_candidates, pairs_of
    from dupe_scanner.memory import release_memory

    if in_one_go:
        keypoint_store.SHARD_POINTS = 1 << 62
    real = read_real(base)
    descriptors = Descriptors(real, points_a_picture)
    folder = SCRATCH / (f"size-{size}" if points_a_picture is None else f"size-{size}-points-{points_a_picture}")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    keys = [f"{number:064d}" for number in range(size)]
    store = keypoint_store.KeypointStore(folder / "state.db.keypoints", "bench")
    memory = PeakRss()
    memory.reset()
    wall, cpu = time.perf_counter(), time.process_time()
    points = store.points(keys, lambda some: [descriptors.of(int(key)) for key in some])
    row = {"N": size, "build": "in one go" if in_one_go else "in shards", "points": points.points}
    row.update(build_s=time.perf_counter() - wall, build_cpu=time.process_time() - cpu, build_mb=memory.reset() / 1e6)
    row["base_mb"] = sum(path.stat().st_size for path in folder.iterdir()) / 1e6
    del points
    release_memory()

    points = keypoint_store.KeypointStore(folder / "state.db.keypoints", "bench").points(keys, lambda some: [], queries=part)
    queries = {row: [descriptors.of(row), descriptors.of(row, mirrored=True)] for row in range(size - part, size)}
    hashes = descriptors.hashes(size)
    for name, given in (("scan", hashes), ("no_hashes", None)):
        memory.reset()
        cpu = time.process_time()
        found = pairs_of(keypoint_candidates(points, size, queries, threads=2, age=np.arange(size), hashes=given))
        row[f"{name}_search_ms"] = 1000 * (time.process_time() - cpu) / part
        row[f"{name}_search_mb"] = memory.reset() / 1e6
        row[f"{name}_candidates"] = len(found) / part
    return row


class Descriptors:
    """A distinct simulated picture's descriptors, made from its number (as bench/scale's
    ``distinct_features`` draws them: from four real pictures, bits flipped); ``points``: that
    many a picture, from as many real pictures as it takes at 15 each, rather than as many as
    the shape donor has."""

    def __init__(self, real, points: int | None = None) -> None:
        self.real, self.points = real, points
        # With ``points``, the points come from pictures with ``RICH_POINTS`` or more either way (a flat tile has none).
        self.donors = real.features if points is None else real.rich

    def of(self, number: int, mirrored: bool = False) -> np.ndarray:
        rng = np.random.default_rng(2 * number + mirrored)
        shape, *donors = [self.donors[i] for i in rng.choice(len(self.donors), size=self._drawn_from, replace=False)]
        count = self.points or len(shape.mirror_descriptors if mirrored else shape.descriptors)
        return drawn_points(donors, mirrored, count, rng)[1]

    @property
    def _drawn_from(self) -> int:
        """Real pictures a picture is made from: its shape donor, and those its points come from."""
        return 5 if self.points is None else 1 + max(4, -(-self.points // POINTS_A_DONOR))

    def hashes(self, size: int, chunk: int = 20_000) -> np.ndarray:
        """uint64[size, 8]: each picture's hashes, its shape donor's (the one ``of`` draws first)
        with ``DISTINCT_FLIPS`` bits flipped in each, as ``scale_simulate.distinct_features`` makes them."""
        real = np.stack([features.hashes for features in self.donors]).astype(np.uint64)
        drawn_from = self._drawn_from
        shapes = np.array([np.random.default_rng(2 * number).choice(len(real), size=drawn_from, replace=False)[0] for number in range(size)])
        out = np.empty((size, real.shape[1]), np.uint64)
        rng = np.random.default_rng(size)
        bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
        for start in range(0, size, chunk):
            rows = shapes[start : start + chunk]
            flips = rng.integers(DISTINCT_FLIPS[0], DISTINCT_FLIPS[1] + 1, size=(len(rows), real.shape[1], 1))
            chosen = np.argsort(rng.random((len(rows), real.shape[1], 64)), axis=2) < flips  # that many random bits a word
            out[start : start + len(rows)] = real[rows] ^ np.bitwise_or.reduce(np.where(chosen, bits, np.uint64(0)), axis=2)
        return out


def print_table(rows: list[dict]) -> None:
    searches = "".join(f" {name + ' ms/pic':>17} {'MB':>5} {'cand./pic':>9}" for name in ("as a scan", "no hashes"))
    print(
        f"\n{'N':>9} {'build':>10} {'points':>11} {'a pic':>5} {'build s':>8} {'build CPU s':>11} {'build MB':>9} {'base MB':>8}{searches}"
    )
    for row in rows:
        found = "".join(
            f" {row[name + '_search_ms']:>17.1f} {row[name + '_search_mb']:>5.0f} {row[name + '_candidates']:>9.1f}" for name in ("scan", "no_hashes")
        )
        print(
            f"{row['N']:>9} {row['build']:>10} {row['points']:>11} {row['points'] / row['N']:>5.1f} {row['build_s']:>8.0f} {row['build_cpu']:>11.0f} "
            f"{row['build_mb']:>9.0f} {row['base_mb']:>8.0f}{found}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
