"""Reports at scale: writing them for N duplicate groups, then again after one group changed.

Builds a few hundred small JPEGs once and hard-links them under many names, so N groups
of real files cost seconds to set up; every file is a distinct content (its own hash)
to the reports. For each N, in a fresh process (so peak memory is that N's own):

1. the first write, thumbnail cache empty (every picture shown is decoded);
2. the rewrite after one picture of one group was edited (the cache is warm);
3. the same once more with no cache, as before the cache existed (the changed page
   decodes every picture it shows).

Columns: seconds (wall and CPU, all threads) and thumbnails decoded of each write, the
peak RSS of each write and the RSS before the first (the groups alone), the sizes of the
reports and of the cache.

    .venv/bin/python bench/report_scale.py [--groups 1000 10000 100000] [--keep DIR]

Run with PYTHONPATH pointing at another checkout's package to measure that one (a
checkout without the cache runs steps 2 and 3 alike, with no cache).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, os.environ.get("PYTHONPATH") or str(Path(__file__).resolve().parent.parent))

from dupe_scanner.groups import DuplicateGroup, FileEntry, FilePair
from dupe_scanner.reports import html_report, write_reports
from dupe_scanner.settings import ReportSettings

POOL_SIZE = 300
POOL_SIDE = (240, 180)
GROUP_SIZES = (2, 2, 3, 2, 4, 2, 3, 5)  # cycled: mostly pairs, a few bigger groups
FILES_PER_FOLDER = 1000
MB = 1024 * 1024
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


# --- the library -------------------------------------------------------------------


def make_pool(folder: Path) -> list[Path]:
    """Small pictures with shapes and texture, so decoding and shrinking do real work."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(POOL_SIZE):
        path = folder / f"pool-{index:03d}.jpg"
        if not path.exists():
            _picture(random.Random(index)).save(path, quality=90)
        paths.append(path)
    return paths


def _picture(rng: random.Random) -> Image.Image:
    image = Image.new("RGB", POOL_SIDE, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(POOL_SIDE[0]), rng.randrange(POOL_SIDE[1])
        box = (x, y, x + rng.randrange(10, 120), y + rng.randrange(10, 90))
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3))) if rng.random() < 0.5 else draw.rectangle(
            box, fill=tuple(rng.randrange(256) for _ in range(3))
        )
    noise = Image.effect_noise(POOL_SIDE, 40).convert("RGB")
    return Image.blend(image, noise, 0.15).filter(ImageFilter.SMOOTH)


def make_groups(root: Path, pool: list[Path], count: int) -> list[DuplicateGroup]:
    """``count`` groups of hard links to pool pictures, each file its own content, biggest first."""
    stats = [path.stat() for path in pool]
    groups = []
    for g in range(count):
        folder = root / "library" / f"{g // FILES_PER_FOLDER:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        members = []
        for m in range(GROUP_SIZES[g % len(GROUP_SIZES)]):
            source = (g * 7 + m * 13) % len(pool)
            path = folder / f"IMG_{g:06d}_{m}.jpg"
            if not path.exists():
                os.link(pool[source], path)
            members.append(_entry(path, stats[source]))
        groups.append(_group(members))
    groups.sort(key=lambda group: (-len(group.members), group.members[0].path))
    return groups


def _entry(path: Path, stat: os.stat_result, salt: str = "") -> FileEntry:
    digest = hashlib.sha256(f"{path}{salt}".encode()).hexdigest()
    return FileEntry(str(path), stat.st_size, stat.st_mtime, POOL_SIDE[0], POOL_SIDE[1], "JPEG", digest)


def _group(members: list[FileEntry]) -> DuplicateGroup:
    members = sorted(members, key=lambda member: member.path)
    anchor = members[0].path
    pairs = [FilePair(anchor, other.path, 0.95 - 0.05 * index) for index, other in enumerate(members[1:])]
    pairs += [FilePair(a.path, b.path, 0.7) for i, a in enumerate(members[1:]) for b in members[i + 2 :]]
    return DuplicateGroup(anchor=anchor, members=tuple(members), pairs=tuple(sorted(pairs)))


def edit_one_picture(groups: list[DuplicateGroup], index: int, pool: list[Path], shade: int) -> list[DuplicateGroup]:
    """The groups after the last picture of group ``index`` was edited in place (new bytes, new hash)."""
    group = groups[index]
    edited = Path(group.members[-1].path)
    edited.unlink()  # a hard link: editing it in place would change the pool picture too
    with Image.open(pool[0]) as picture:
        Image.blend(picture.convert("RGB"), Image.new("RGB", picture.size, (shade, 0, 0)), 0.4).save(edited, quality=90)
    members = [*group.members[:-1], _entry(edited, edited.stat(), salt=f"edit-{shade}")]
    return [*groups[:index], _group(members), *groups[index + 1 :]]


# --- one N, measured in its own process ---------------------------------------------------


def measure(count: int, root: Path, pool_dir: Path) -> dict:
    pool = make_pool(pool_dir)
    groups = make_groups(root, pool, count)
    reports, cache = root / "reports", root / "state" / ".thumbnails"
    for folder in (reports, cache):
        shutil.rmtree(folder, ignore_errors=True)
    settings = ReportSettings()  # the defaults: 2,000 pictures a page, 160-pixel thumbnails
    has_cache = "thumbnail_cache" in inspect.signature(write_reports).parameters
    row: dict[str, Any] = {"groups": count, "files": sum(len(group.members) for group in groups)}

    def write(name: str, groups: list[DuplicateGroup], use_cache: bool) -> None:
        row[f"{name}_rss_before_mb"] = _rss_mb()
        _reset_peak()
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        options: dict[str, Any] = {"thumbnail_cache": cache if use_cache else None} if has_cache else {}
        outcome = write_reports(groups, reports, settings, 0.6, generated_at=T0, **options)
        row[f"{name}_s"] = time.perf_counter() - started
        row[f"{name}_cpu_s"] = _cpu_seconds() - cpu_started
        row[f"{name}_peak_mb"] = _peak_mb()
        row[f"{name}_decoded"] = getattr(outcome, "thumbnails_decoded", None)
        row[f"{name}_written"] = len(outcome.written)

    # A group the HTML pages show (past 50 pages they show none), in the middle of them.
    plan = html_report.plan_pages(groups, settings.html_max_nodes)
    changing = sum(len(page.groups) for page in plan.pages) // 2
    write("first", groups, use_cache=True)
    groups = edit_one_picture(groups, changing, pool, shade=255)
    write("rewrite", groups, use_cache=True)
    groups = edit_one_picture(groups, changing, pool, shade=128)
    write("uncached", groups, use_cache=False)
    row["pages"] = len(list(reports.glob("duplicates*.html")))
    row["json_mb"] = _size_mb(reports / "duplicates.json")
    row["details_mb"] = _size_mb(reports / "duplicates.details.json")
    row["html_mb"] = sum(_size_mb(page) for page in reports.glob("duplicates*.html"))
    cached = [path for path in cache.rglob("*.jpg")] if cache.exists() else []
    row["cache_entries"] = len(cached)
    row["cache_mb"] = sum(path.stat().st_size for path in cached) / MB
    return row


def _cpu_seconds() -> float:
    """This process's CPU time, all threads: on a shared machine it says more than the clock."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def _peak_mb() -> float:
    peak = _status_kb("VmHWM")
    return (peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _reset_peak() -> None:
    """Linux resets the peak RSS (VmHWM) on "5"; elsewhere the peak is the process's so far."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _size_mb(path: Path) -> float:
    return path.stat().st_size / MB if path.exists() else 0.0


# --- the table -------------------------------------------------------------------------


COLUMNS = (
    ("groups", "groups", "{:,}"),
    ("files", "files", "{:,}"),
    ("pages", "pages", "{}"),
    ("first write s", "first_s", "{:.1f}"),
    ("CPU s", "first_cpu_s", "{:.1f}"),
    ("decoded", "first_decoded", "{}"),
    ("peak RSS MB", "first_peak_mb", "{:.0f}"),
    ("rewrite after one change s", "rewrite_s", "{:.1f}"),
    ("CPU s", "rewrite_cpu_s", "{:.1f}"),
    ("decoded", "rewrite_decoded", "{}"),
    ("peak RSS MB", "rewrite_peak_mb", "{:.0f}"),
    ("same, no cache s", "uncached_s", "{:.1f}"),
    ("CPU s", "uncached_cpu_s", "{:.1f}"),
    ("decoded", "uncached_decoded", "{}"),
    ("RSS of the groups MB", "first_rss_before_mb", "{:.0f}"),
    ("json MB", "json_mb", "{:.1f}"),
    ("details MB", "details_mb", "{:.1f}"),
    ("html MB", "html_mb", "{:.1f}"),
    ("cache entries", "cache_entries", "{:,}"),
    ("cache MB", "cache_mb", "{:.1f}"),
)


def print_table(rows: list[dict], columns: tuple[tuple[str, str, str], ...] = COLUMNS) -> None:
    """``rows`` as a Markdown table of ``columns``: (title, key in a row, format); "—" where a row lacks the key."""
    print("| " + " | ".join(title for title, _, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = ["—" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in columns]
        print("| " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--keep", type=Path, help="build the library here and keep it (default: a temporary folder)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one N in this process
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.root / f"n{args.one}", args.root / "pool")))
        return 0
    root = args.keep or Path(tempfile.mkdtemp(prefix="report-scale-"))
    rows = []
    try:
        for count in args.groups:
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(count), "--root", str(root)],
                check=True, stdout=subprocess.PIPE, text=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"measured {count:,} groups", file=sys.stderr, flush=True)
        print_table(rows)
    finally:
        if args.keep is None:
            print(f"removing {root}", file=sys.stderr, flush=True)
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
