"""A scanned state's stored pairs grouped again by the importable code, and scored as its bench scores them.

``python -m bench.regroup scale [--size 16000]`` or ``python -m bench.regroup labelled`` prints one table.

Grouping is a pure function of the stored pairs and files (``scanning.read_grouping`` and
``form_groups``), so a change to it needs no new comparison to be measured: this reads the
state a bench run left (bench/scale's library of ``--size`` pictures, or the labelled set's),
forms the groups with whichever ``dupe_scanner`` is importable (a worktree's, through
``PYTHONPATH``, for the code before a change), and scores them exactly as the bench does:
every two members of a group are a reported pair (``bench/metrics.py`` ``evaluate``), with
bench/scale's repeating patterns left out and the labelled set's blank families excluded.
The state is opened read-only; the pairs of bench/scale's 100 added pictures are left out, as
its table scores the first scan.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from bench.metrics import evaluate, group_pairs

CACHE = Path.home() / ".cache" / "dupe-scanner-bench"
THRESHOLD = 0.6  # the default, at which both benches score


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.regroup", description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=("scale", "labelled"), help="bench/scale's library, or the labelled set")
    parser.add_argument("--size", type=int, default=16000, help="bench/scale's library size (default 16000)")
    parser.add_argument("--root", type=Path, default=CACHE, help=f"the benches' home (default {CACHE})")
    options = parser.parse_args()
    rows = scale_rows(options.root, options.size) if options.set == "scale" else labelled_rows(options.root)
    if rows is None:
        return 2
    print_table(rows)
    return 0


def scale_rows(root: Path, size: int) -> list[dict] | None:
    from bench.__main__ import _skimage_data
    from bench.scale import leave_out_repeats
    from bench.scale_library import Pool
    from bench.scale_repeats import RepeatCheck

    pool = Pool(root / "scale", _skimage_data(), log=lambda line: None)
    state = pool.folder / "runs" / f"dupe-scanner-{size}" / "state"
    library = pool.folder / "libraries" / f"library-{size}"
    groups, seconds = _groups(state, library)
    if groups is None:
        return None
    labels = pool.scoring_labels(pool.sequence(size))
    result = evaluate(labels, dict.fromkeys(reported_pairs(groups, library), 1.0), 0.5, None)
    wrong = [(a, b, pool.labels[a]["family"], pool.labels[b]["family"]) for a, b, _ in result.false_positives]
    counted = {"fp": result.fp, "tp": result.tp, "precision": result.precision, "false_positives": wrong}
    row = leave_out_repeats(counted, RepeatCheck(pool.seeds))
    return [
        {
            "set": f"scale {size}", "groups": len(groups), "seconds": seconds, "precision": row["precision"], "recall": result.recall,
            "pairs": f"{result.tp}+{row['fp']}/{result.positives}", "repeats": row["repeats"],
        }
    ]


def labelled_rows(root: Path) -> list[dict] | None:
    import json

    from bench.__main__ import blank_families
    from bench.dataset import SET_VERSION

    set_root = root / SET_VERSION
    labels = json.loads((set_root / "labels.json").read_text())
    labels["excluded"] = blank_families(set_root, labels)
    images = set_root / "images"
    groups, seconds = _groups(root / "runs" / "labelled" / "state", images)
    if groups is None:
        return None
    scored = reported_pairs(groups, images, THRESHOLD)
    rows = []
    for split in ("report", "tune"):
        result = evaluate(labels, scored, THRESHOLD, split)
        rows.append(
            {
                "set": f"labelled, {split} split", "groups": len(groups), "seconds": seconds, "precision": result.precision,
                "recall": result.recall, "pairs": f"{result.tp}+{result.fp}/{result.positives}", "repeats": "-",
            }
        )
    return rows


def _groups(state: Path, library: Path):
    """The groups of the files under ``library``, formed from the state's stored pairs, and the seconds forming took."""
    from sqlalchemy import create_engine

    from dupe_scanner.scanning import form_groups, read_grouping

    database = state / "state.db"
    if not database.exists():
        print(f"no state.db in {state}: run the bench first", file=sys.stderr)
        return None, 0.0
    engine = create_engine(f"sqlite:///file:{database}?mode=ro&uri=true")
    grouping = read_grouping(engine, THRESHOLD)
    inside = str(library.resolve()) + "/"
    grouping = dataclasses.replace(grouping, entries=[entry for entry in grouping.entries if entry.path.startswith(inside)])
    started = time.perf_counter()
    groups = form_groups(grouping, THRESHOLD, unscored_are_far=False)
    seconds = time.perf_counter() - started
    engine.dispose()
    return groups, seconds


def reported_pairs(groups: Iterable, library: Path, threshold: float = 1.0) -> dict[tuple[str, str], float]:
    """Every two members of each group as a reported pair, by name under ``library``: the
    score of a pair the group lists, ``threshold`` for the rest (as the benches read reports)."""
    root = library.resolve()

    def name(path: str) -> str:
        return Path(path).resolve().relative_to(root).as_posix()

    return group_pairs(
        (([name(member.path) for member in group.members], [(name(p.first), name(p.second), p.score) for p in group.pairs]) for group in groups),
        threshold,
    )


def print_table(rows: list[dict]) -> None:
    print(f"{'set':<24} {'groups':>7} {'group s':>8} {'precision':>9} {'recall':>7} {'pairs':>14} {'repeats':>7}")
    for row in rows:
        print(
            f"{row['set']:<24} {row['groups']:>7} {row['seconds']:>8.2f} {row['precision']:>9.4f} {row['recall']:>7.4f} "
            f"{row['pairs']:>14} {row['repeats']:>7}"
        )


if __name__ == "__main__":
    sys.exit(main())
