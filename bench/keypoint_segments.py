"""The pictures analysed since the kept keypoint base was written: read from the state and
searched afresh at every scan, or filed in segments beside the base as they come.

``python -m bench.keypoint_segments --state DIR [--new 19500] [--searches 1,100] [--rounds 2]``
prints one table.

``DIR`` holds a scanned state (``state.db``), such as bench.incremental's library of 100,000
pictures; it is only read. In a scratch folder, the real ``KeypointStore`` writes a base over
every content but the newest ``--new`` (by the time they were analysed), as a base written a
growth ago left it. Then the two ways:

- *unkept*: the new contents stay out of the kept files (``SEGMENT_CONTENTS`` past them), as
  before segments: every scan reads their features from the state and searches them;
- *segments*: they are filed as the service's scans would file them, ``SEGMENT_CONTENTS`` at a
  time, through ``KeypointStore.points``: the CPU seconds of filing them all, of the costliest
  filing (a merge) and the peak RSS of that process; the rest stay the delta.

For each search size (the newest N pictures, as a scan of new ones asks), one process per way
builds the point index through the store and proposes those pictures' candidates through the
real ``propose``: CPU and wall seconds, peak RSS, the contents whose features it read from the
state, and the candidates. The ways alternate within each round.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.keypoint_delta import backend_on, proposed_for_newest

WAYS = ("unkept", "segments")


def write_base(state: Path, folder: Path, new: int) -> dict:
    """A base over every content but the newest ``new``, in ``folder`` (``--base``)."""
    import numpy as np

    backend = backend_on(state, folder / "state.db.keypoints")
    keys, _hashes, analysed_at = backend._load_hashes(None)
    if not 0 < new <= len(keys) // 5:
        sys.exit(f"--new {new}: between 1 and a fifth of the {len(keys)} contents (more would have the base written anew)")
    older = np.sort(np.argsort(analysed_at, kind="stable")[: len(keys) - new])
    started = time.process_time()
    backend.keypoints.points([keys[row] for row in older], lambda some: backend._load_descriptors(some)[0])
    return {"cpu": time.process_time() - started, "pictures": len(older)}


def file_segments(state: Path, folder: Path) -> dict:
    """The new contents filed as the service's scans would file them (``--file``)."""
    import numpy as np

    import dupe_scanner.backends.keypoint_store as keypoint_store

    backend = backend_on(state, folder / "state.db.keypoints")
    keys, _hashes, analysed_at = backend._load_hashes(None)
    arrival = np.argsort(analysed_at, kind="stable")
    known = len(keys) - _new_since_base(backend, keys)
    batches = []
    for end in range(known + keypoint_store.SEGMENT_CONTENTS, len(keys) + 1, keypoint_store.SEGMENT_CONTENTS):
        started = time.process_time()
        backend.keypoints.points([keys[row] for row in np.sort(arrival[:end])], lambda some: backend._load_descriptors(some)[0])
        batches.append(time.process_time() - started)
    kept = backend.keypoints._read_kept()
    return {
        "cpu": sum(batches),
        "costliest": max(batches, default=0.0),
        "batches": len(batches),
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "segments": [len(segment.keys) for segment in kept.segments] if kept else [],
    }


def _new_since_base(backend, keys: list[str]) -> int:
    kept = backend.keypoints._read_kept()
    return len(set(keys) - {key.decode() for key in kept.keys.tolist()})


def search(state: Path, folder: Path, way: str, searched: int) -> dict:
    """One search of the newest ``searched`` pictures in this process (``--one``)."""
    import dupe_scanner.backends.keypoint_store as keypoint_store

    if way == "unkept":
        keypoint_store.SEGMENT_CONTENTS = 10**12
    backend = backend_on(state, folder / "state.db.keypoints")
    read: list[int] = []
    load = backend._load_descriptors

    def counted(some):
        read.append(len(some))
        return load(some)

    backend._load_descriptors = counted
    before = sorted(path.name for path in folder.iterdir())
    found = proposed_for_newest(backend, str(searched), searched)
    if sorted(path.name for path in folder.iterdir()) != before:
        sys.exit(f"{folder}: the search changed the kept files")
    return {**found, "read": sum(read) - searched}  # less the searched pictures' own descriptors


def child(*arguments: str) -> dict:
    command = [sys.executable, "-m", "bench.keypoint_segments", *arguments]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="a folder with a scanned state.db")
    parser.add_argument("--new", type=int, default=19500, help="contents new since the base (default 19500)")
    parser.add_argument("--searches", default="1,100", help="the newest N pictures searched, comma-separated (default 1,100)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scratch", type=Path, help="where the kept files are written (default: a temporary folder)")
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=3, metavar=("FOLDER", "WAY", "SEARCHED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.base or args.file or args.one:
        found = write_base(args.state, args.base, args.new) if args.base else file_segments(args.state, args.file) if args.file else None
        print(json.dumps(found or search(args.state, Path(args.one[0]), args.one[1], int(args.one[2]))))
        return
    if not (args.state / "state.db").exists():
        sys.exit(f"{args.state}: no state.db; scan a library first (bench.incremental leaves one)")
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        folders = {way: Path(scratch) / way for way in WAYS}
        folders["unkept"].mkdir()
        base = child("--state", str(args.state), "--new", str(args.new), "--base", str(folders["unkept"]))
        shutil.copytree(folders["unkept"], folders["segments"])
        filed = child("--state", str(args.state), "--file", str(folders["segments"]))
        print(f"base: {base['pictures']} pictures, written in {base['cpu']:.1f} CPU s; {args.new} new since")
        print(
            f"filed in {filed['batches']} batches: {filed['cpu']:.1f} CPU s in all, the costliest {filed['costliest']:.1f}; "
            f"peak {filed['peak']:.0f} MB; segments {filed['segments']}"
        )
        columns = [("searched", 8), ("way", 8), ("round", 5), ("delta", 6), ("read", 6)]
        columns += [("CPU s", 7), ("wall s", 7), ("peak MB", 7), ("candidates", 10)]
        print(" ".join(f"{name:>{width}}" for name, width in columns), "digest")
        for searched in args.searches.split(","):
            for round_ in range(1, args.rounds + 1):
                for way in WAYS if round_ % 2 else WAYS[::-1]:
                    row = child("--state", str(args.state), "--one", str(folders[way]), way, searched)
                    print(
                        f"{searched:>8} {way:>8} {round_:>5} {row['delta']:>6} {row['read']:>6} {row['cpu']:>7.1f} {row['wall']:>7.1f} "
                        f"{row['peak']:>7.0f} {row['candidates']:>10} {row['digest']}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
