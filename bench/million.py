"""The regular rescan and the reconcile walk of a library of a million files: issue 11, target 4.

``python -m bench.million [--sizes 100000,1000000] [--root DIR] [--before PYTHON]`` prints one table.

Each library is N real files on disk (a tiny JPEG each, one inode each, a thousand to a
folder) and a state that knows them all as a finished index and scan leave it: every file
indexed, every content compared, one content in 50 a near copy of an earlier one (its pair
stored, as a scan stores it), and nine rejected verdicts a content stored beside them, as a
scan of real pictures leaves them (``REJECTED_PER_CONTENT``). The contents' hashes are real pictures' hashes with 12 to 32
bits flipped in each (bench/scale_simulate.py's rule); their stored fingerprints are the
hash prefix alone, which is all these two commands read (a pass over every full fingerprint
is what target 4 forbids, so the 20 KB each would only cost disk). The rows are written
with the state's own tables and triggers, in bulk.

Then, with the real command line, each a subprocess measured with all its children:

1. *first reports*: ``dupe-scanner scan`` with the reports folder removed: nothing to
   compare, but every planted group's reports and thumbnails are written (thumbnails are
   then kept by content, beside the state, so a later run of this bench reuses them).
2. *no-change scan*: ``dupe-scanner scan`` again, with nothing new: the service's regular
   rescan. The command line asks what the service asks (``scanning.reports_current``), finds
   nothing changed, and says so without regrouping or writing anything.
3. *a setting changed*: ``dupe-scanner scan --threshold 0.61``: nothing to compare (the
   pairs are stored down to 0.6), but every group formed again and every report written
   (the same groups: every planted pair scores 0.9). What a real change costs. Then, not
   measured, ``scan`` at the default threshold again.
4. *reconcile walk*: ``dupe-scanner index --dir ROOT`` with nothing changed: the walk the
   service makes at start and on its reconcile schedule, here over every file.
5. *one new file*: one photo-like picture written and indexed (``index --dir``), then
   ``scan``. It is searched against every hash of the library; the others' keypoints are
   absent, so the keypoint search's share is not in this figure. The pictures whose hashes
   lie near it by chance could not be verified (their fingerprints are the hash alone),
   so the picture is one whose hashes lie near none of the library's (``a_photo_near_none``),
   as most new photographs in a real library meet only strangers that verification
   settles at once. The scan's log is kept in ``new-file-scan.log`` beside the library.
6. *files gone, one new*: ten of the library's files moved out of it (their folder's
   ``index --dir`` notices), their removal dated back past the grace a scan gives a moved
   file (``scanning.ORPHAN_GRACE_SECONDS``: as if the scan came two minutes later), then one
   new file indexed and ``scan``: it lets go of the ten contents and compares the new one,
   what the scan after any deletion, move or edit in a library does. The files are then put
   back as they were (``put_back``).

``--before PYTHON``: the interpreter of another environment with an earlier version installed
(``python3 -m venv /tmp/before && /tmp/before/bin/pip install CHECKOUT``); its no-change scan
and reconcile walk are measured too, on the same state, right after this code's: a before
and after in one run.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.report_scale import print_table as print_markdown
from bench.scale import SCALE_ROOT, measured
from bench.scale_simulate import DISTINCT_FLIPS, SETTINGS, cli

COPY_EVERY = 50
# A scan stores every verdict, rejected ones too, so that no pair is compared twice: bench/scale's
# library of 16,000 tiles held 8.7 pairs a picture. Planted at that rate, scoring under the
# verification's 0.6, so the pairs table is as large as a real library's.
REJECTED_PER_CONTENT = 9
REJECTED_SCORES = (0.0, 0.59)
PER_FOLDER = 1000
ROW_BATCH = 20_000
STATE_SECONDS = 1_700_000_000.0  # when the simulated library was indexed and scanned


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.million", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="library sizes, ascending (default 100000,1000000)")
    parser.add_argument("--root", type=Path, default=SCALE_ROOT, help=f"where the libraries live (default {SCALE_ROOT})")
    parser.add_argument("--before", type=Path, help="the python of an environment with an earlier version, measured beside this code")
    options = parser.parse_args()
    real_hashes = _real_hashes(options.root)
    rows = []
    for size in (int(s) for s in options.sizes.split(",")):
        rows.append(measure(size, options.root / "million" / f"size-{size}", real_hashes, options.before))
        print_table(rows, before=options.before is not None)
    return 0


def _real_hashes(root: Path) -> np.ndarray:
    """The eight hashes of each picture of bench/scale's indexed base (real photographs)."""
    from dupe_scanner.analysis.features import ANALYSER, PREFIX_BYTES, decode_hash_rows

    state = root / "simulation" / "base-1000" / "state" / "state.db"
    if not state.exists():
        raise SystemExit(f"{state}: not there; run `python -m bench.incremental --sizes 10000` once to index the base")
    with sqlite3.connect(state) as connection:
        query = f"SELECT substr(data, 1, {PREFIX_BYTES}) FROM features WHERE analyser = ?"
        prefixes = [bytes(row[0]) for row in connection.execute(query, (ANALYSER,))]
    _, hashes = decode_hash_rows(prefixes)
    if not len(hashes):
        raise SystemExit(f"{state}: indexed by another analyser; run `python -m bench.incremental --sizes 10000` to index it again")
    return hashes


def measure(size: int, folder: Path, real_hashes: np.ndarray, before: Path | None = None) -> dict:
    started = time.perf_counter()
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        build(size, folder, real_hashes)
        (folder / ".complete").write_text(str(size))
    built = time.perf_counter() - started
    as_compared_by_this_version(folder)
    shutil.rmtree(folder / "reports", ignore_errors=True)
    first_s, first_peak, _ = measured([*cli(folder), "scan"], cwd=folder)
    scan_s, scan_peak, skipped = measured([*cli(folder), "scan"], cwd=folder)
    if not skipped.stdout.startswith("Nothing changed"):
        raise RuntimeError(f"the no-change scan ran: {skipped.stdout}")
    regroup_s, regroup_peak, _ = measured([*cli(folder), "scan", "--threshold", "0.61"], cwd=folder)
    measured([*cli(folder), "scan"], cwd=folder)  # back at the default threshold, so the last step changes one file alone
    walk_s, walk_peak, _ = measured([*cli(folder), "index", "--dir", str(folder / "library")], cwd=folder)
    earlier = measure_before(folder, before) if before is not None else {}
    new_index_s, new_scan_s, new_peak, unverifiable = one_new_file(folder, size, real_hashes)
    gone_scan_s, gone_peak = files_gone_and_one_new(folder, size, real_hashes)
    state_bytes = sum(p.stat().st_size for p in (folder / "state").glob("state.db*") if p.is_file())
    return {
        "size": size,
        "built_s": built,
        "first_s": first_s,
        "first_peak": first_peak,
        "scan_s": scan_s,
        "scan_peak": scan_peak,
        "regroup_s": regroup_s,
        "regroup_peak": regroup_peak,
        "walk_s": walk_s,
        "walk_peak": walk_peak,
        "new_index_s": new_index_s,
        "new_scan_s": new_scan_s,
        "new_peak": new_peak,
        "unverifiable": unverifiable,
        "gone_scan_s": gone_scan_s,
        "gone_peak": gone_peak,
        "state_bytes": state_bytes,
        **earlier,
    }


def measure_before(folder: Path, python: Path) -> dict:
    """The earlier version's no-change scan and reconcile walk, on the same state."""
    renamed = subprocess.run([str(python), "-c", "import dupe_scanner"], capture_output=True).returncode == 0
    command = [str(python), "-m", "dupe_scanner" if renamed else "daemon", "--config", str(folder / "settings.toml")]
    scan_s, scan_peak, _ = measured([*command, "scan"], cwd=folder)
    walk_s, walk_peak, _ = measured([*command, "index", "--dir", str(folder / "library")], cwd=folder)
    return {"before_scan_s": scan_s, "before_scan_peak": scan_peak, "before_walk_s": walk_s, "before_walk_peak": walk_peak}


def one_new_file(folder: Path, size: int, real_hashes: np.ndarray) -> tuple[float, float, int, int]:
    """A new photo-like picture written into the library, indexed, then scanned (a new one each
    run): the seconds of each, their peak RSS, and how many fingerprints the scan dropped.

    The picture is one whose hashes lie near none of the library's (``a_photo_near_none``):
    the library's fingerprints are the hash prefix alone, so a candidate among them cannot be
    verified, and the scan would drop it as damaged and form every group again, as no real
    library makes it do. Should one be dropped all the same, the bench puts it back
    (``restore_fingerprints``) so that the next run starts from the same library, and the
    table says how many.
    """
    index_s, index_peak = write_and_index_a_new_file(folder)
    scan_s, scan_peak, scan = measured([*cli(folder), "scan"], cwd=folder)
    (folder / "new-file-scan.log").write_text(scan.stdout + scan.stderr)
    unverifiable = restore_fingerprints(folder, size, real_hashes)
    return index_s, scan_s, max(index_peak, scan_peak), unverifiable


def write_and_index_a_new_file(folder: Path) -> tuple[float, int]:
    """A new photo-like picture (another each run, ``a_photo_near_none``) written into the library and indexed: the seconds and peak RSS."""
    from tests.photos import make_photo, save

    target = folder / "library" / "new"
    target.mkdir(exist_ok=True)
    seed = a_photo_near_none(folder, target)
    save(make_photo(seed), target / f"new-{seed}.jpg", quality=90)
    index_s, index_peak, _ = measured([*cli(folder), "index", "--dir", str(target)], cwd=folder)
    return index_s, index_peak


NEW_PHOTO_SEEDS = range(1_000_000, 1_001_000)
SEEDS_SEARCHED_AT_ONCE = 32  # one hash search of the library (about a second at a million) for this many


def a_photo_near_none(folder: Path, target: Path) -> int:
    """The seed of a new photo-like picture (``tests.photos.make_photo``) not yet in ``target``
    whose hashes the scan's own hash search finds no library picture near. At a million,
    about one in fifteen: the others meet one to six hashes by chance. The seeds are searched
    for together, each as the newest picture, as a scan of new pictures searches them: one by
    one, the seeds tried before were tried again at every call, minutes apiece after a few."""
    from dupe_scanner.analysis.candidates import hash_candidates
    from dupe_scanner.analysis.features import ANALYSER, decode_hash_rows
    from dupe_scanner.analysis.fingerprints import features_of
    from tests.photos import make_photo

    with sqlite3.connect(folder / "state" / "state.db") as connection:
        prefixes = [bytes(row[0]) for row in connection.execute("SELECT prefix FROM feature_hashes WHERE analyser = ?", (ANALYSER,))]
    _, library = decode_hash_rows(prefixes)
    unused = (seed for seed in NEW_PHOTO_SEEDS if not (target / f"new-{seed}.jpg").exists())
    while seeds := list(itertools.islice(unused, SEEDS_SEARCHED_AT_ONCE)):
        photos = [make_photo(seed) for seed in seeds]
        searched = np.array([features_of(photo, photo.size).hashes for photo in photos], np.uint64).reshape(-1, 8)
        rows = np.arange(len(library), len(library) + len(seeds))
        newer_than_the_library = np.concatenate([np.zeros(len(library), np.int64), np.ones(len(seeds), np.int64)])
        near_some = {query for query, _, _ in hash_candidates(np.vstack([library, searched]), rows, newer_than_the_library)}
        for row, seed in zip(rows.tolist(), seeds, strict=True):
            if row not in near_some:
                return seed
    raise RuntimeError(f"none of the seeds {NEW_PHOTO_SEEDS} gives a picture near no library picture")


GONE_FILES = 10


def files_gone_and_one_new(folder: Path, size: int, real_hashes: np.ndarray) -> tuple[float, int]:
    """``GONE_FILES`` of the library's files moved out of it and noticed, one new file indexed,
    then ``scan``: its seconds and peak RSS. The files are put back afterwards (``put_back``)."""
    from dupe_scanner.scanning import ORPHAN_GRACE_SECONDS

    shelf = folder / "moved-out"
    shelf.mkdir(exist_ok=True)
    numbers = range(size - 1 - GONE_FILES, size - 1)  # not the last file: a planted copy's number is 50 k - 1
    moved = [_library_path(folder / "library", number) for number in numbers]
    for path in moved:
        path.rename(shelf / path.name)
    measured([*cli(folder), "index", "--dir", str(moved[0].parent)], cwd=folder)
    with sqlite3.connect(folder / "state" / "state.db") as connection:
        dated = [(ORPHAN_GRACE_SECONDS + 60, str(path)) for path in moved]
        connection.executemany("update files set changed_at = changed_at - ? where path = ? and state = 'gone'", dated)
    write_and_index_a_new_file(folder)
    scan_s, scan_peak, scan = measured([*cli(folder), "scan"], cwd=folder)
    (folder / "gone-files-scan.log").write_text(scan.stdout + scan.stderr)
    put_back(folder, size, real_hashes, moved, shelf)
    return scan_s, scan_peak


def put_back(folder: Path, size: int, real_hashes: np.ndarray, moved: list[Path], shelf: Path) -> None:
    """The moved files back in the library as they were: on disk (the same inode and mtime, so a
    walk finds them unchanged), and in the state (their contents, synthetic fingerprints and
    planted pairs: ``restore_fingerprints``)."""
    for path in moved:
        (shelf / path.name).rename(path)
    with sqlite3.connect(folder / "state" / "state.db") as connection:
        waiting = [(str(path),) for path in moved]
        connection.executemany("update files set state = 'pending', content_hash = null where path = ?", waiting)
    restore_fingerprints(folder, size, real_hashes)


def rewrite_kept_hashes(folder: Path) -> None:
    """The hash table kept beside the state (``backends.hash_store``) read again from the state, as a
    scan reads it when the kept one no longer adds up: the bench wrote rows behind its back."""
    from dupe_scanner.backends.embedded import EmbeddedBackend
    from dupe_scanner.store.database import open_state

    database = folder / "state" / "state.db"
    engine = open_state(database)
    try:
        backend = EmbeddedBackend(engine, workers=1, max_image_pixels=1, hash_file=database.with_name(database.name + ".hashes"))
        backend._load_hashes(None)
        backend.close()
    finally:
        engine.dispose()


def _library_path(library: Path, number: int) -> Path:
    return library / f"{number // PER_FOLDER:04d}" / f"{number:07d}.jpg"


def as_compared_by_this_version(folder: Path) -> None:
    """Mark the library's pairs as this version's comparison found them. After a verifier
    change a scan would compare every pair again, and the synthetic fingerprints cannot be
    verified (see ``one_new_file``): the library stands for a library this version scanned."""
    from dupe_scanner.backends.embedded import EmbeddedBackend
    from dupe_scanner.scanning import COMPARISON_KEY

    with sqlite3.connect(folder / "state" / "state.db") as connection:
        connection.execute("update meta set value = ? where key = ?", (EmbeddedBackend.comparison, COMPARISON_KEY))


def restore_fingerprints(folder: Path, size: int, real_hashes: np.ndarray) -> int:
    """Put back the library's contents a scan dropped as damaged (see ``one_new_file``): their
    synthetic fingerprints, and, where a later scan already let go of the content (its files
    waiting to be indexed again, which would give them the tiny JPEG's real fingerprint and
    make them one group), the content, its files' link to it and its planted pair; then the hash
    table kept beside the state, which the scan took them out of (``rewrite_kept_hashes``). How many."""
    from dupe_scanner.analysis.features import ANALYSER, MAGIC

    with sqlite3.connect(folder / "state" / "state.db") as connection:
        unfingerprinted = "select hash from contents c where not exists (select 1 from features f where f.hash = c.hash)"
        missing = [row[0] for row in connection.execute(unfingerprinted)]
        waiting = _library_files_waiting(connection, folder / "library", size)
        if not missing and not waiting:
            return 0
        hashes, keys, partners = _synthetic_library_and_pairs(size, real_hashes)
        number_of = {key: number for number, key in enumerate(keys)}
        numbers = [number_of[key] for key in missing if key in number_of] + [number for _, number in waiting]
        for path, number in waiting:
            content = _content_row(keys[number])
            connection.execute(f"insert or ignore into contents ({', '.join(content)}) values ({', '.join(':' + name for name in content)})", content)
            connection.execute("update files set content_hash = ?, state = 'indexed' where path = ?", (keys[number], path))
            planted = [_pair_row(keys[first], keys[second]) for first, second in partners.get(number, [])]
            connection.executemany("insert or ignore into pairs (first, second, score) values (:first, :second, :score)", planted)
        rows = [(keys[number], ANALYSER, MAGIC + hashes[number].astype("<u8").tobytes()) for number in numbers]
        connection.executemany("insert or ignore into features (hash, analyser, data) values (?, ?, ?)", rows)
    rewrite_kept_hashes(folder)
    return len(rows)


def _library_files_waiting(connection: sqlite3.Connection, library: Path, size: int) -> list[tuple[str, int]]:
    """(path, number) of the library's files whose content was let go, waiting to be indexed again."""
    found = []
    for (path,) in connection.execute("select path from files where state = 'pending' and content_hash is null"):
        where = Path(path)
        if where.parent.parent == library and where.stem.isdigit() and int(where.stem) < size:
            found.append((path, int(where.stem)))
    return found


def _synthetic_library_and_pairs(size: int, real_hashes: np.ndarray) -> tuple[np.ndarray, list[str], dict[int, list[tuple[int, int]]]]:
    """``_synthetic_library`` as ``write_state`` drew it, and its planted pairs by each of their numbers."""
    rng = np.random.default_rng(size)
    hashes, keys = _synthetic_library(size, real_hashes, rng)
    partners: dict[int, list[tuple[int, int]]] = {}
    for number in range(COPY_EVERY - 1, size, COPY_EVERY):  # the order write_state draws them in
        original = number - 1 - int(rng.integers(0, min(number, 500)))
        for end in (original, number):
            partners.setdefault(end, []).append((original, number))
    return hashes, keys, partners


# -- building a library ----------------------------------------------------------------------------


def build(size: int, folder: Path, real_hashes: np.ndarray) -> None:
    (folder / "state").mkdir(parents=True)
    (folder / "settings.toml").write_text(SETTINGS)
    paths = write_files(folder / "library", size)
    write_state(folder, paths, real_hashes)


def write_files(library: Path, size: int) -> list[str]:
    picture = tiny_jpeg()
    paths = []
    for number in range(size):
        path = _library_path(library, number)
        if number % PER_FOLDER == 0:
            path.parent.mkdir(parents=True)
        path.write_bytes(picture)
        paths.append(str(path))
        if number % 100_000 == 99_999:
            print(f"  {number + 1:,} files", flush=True)
    return paths


def tiny_jpeg() -> bytes:
    """A 16×16 JPEG (about 600 bytes): a thumbnail can be made of it, and a million fit in 1 GB."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 140, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_state(folder: Path, paths: list[str], real_hashes: np.ndarray) -> None:
    """Every file indexed, every content compared, the copies' pairs stored: as a finished scan leaves them."""
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from dupe_scanner.analysis.features import ANALYSER, MAGIC
    from dupe_scanner.backends.embedded import EmbeddedBackend
    from dupe_scanner.scanning import COMPARISON_KEY, FLOOR_KEY, PAIR_FLOOR
    from dupe_scanner.store import contents as content_store
    from dupe_scanner.store.database import open_state, write_transaction
    from dupe_scanner.store.schema import contents, features, files, pairs

    rng = np.random.default_rng(size := len(paths))
    hashes, keys = _synthetic_library(size, real_hashes, rng)
    verdicts = np.random.default_rng((size, 1))  # drawn apart: ``rng`` draws the planted pairs as _synthetic_library_and_pairs does
    engine = open_state(folder / "state" / "state.db")
    for start in range(0, size, ROW_BATCH):
        numbers = range(start, min(start + ROW_BATCH, size))
        with write_transaction(engine) as connection:
            connection.execute(contents.insert(), [_content_row(keys[n]) for n in numbers])
            connection.execute(
                features.insert(), [{"hash": keys[n], "analyser": ANALYSER, "data": MAGIC + hashes[n].astype("<u8").tobytes()} for n in numbers]
            )
            connection.execute(files.insert(), [_file_row(paths[n], keys[n]) for n in numbers])
            copies = [n for n in numbers if n % COPY_EVERY == COPY_EVERY - 1]
            if copies:
                connection.execute(pairs.insert(), [_pair_row(keys[n - 1 - int(rng.integers(0, min(n, 500)))], keys[n]) for n in copies])
            connection.execute(sqlite_insert(pairs).on_conflict_do_nothing(), _rejected_rows(numbers, keys, verdicts))
        print(f"  {numbers.stop:,} rows", flush=True)
    with write_transaction(engine) as connection:
        content_store.set_meta(connection, FLOOR_KEY, repr(min(PAIR_FLOOR, 0.6)))
        content_store.set_meta(connection, COMPARISON_KEY, EmbeddedBackend.comparison)
    engine.dispose()


def _synthetic_library(size: int, real_hashes: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, list[str]]:
    """Every content's hashes and key, the same at every call for a size (drawn first from ``rng``)."""
    hashes = synthetic_hashes(real_hashes, size, rng if rng is not None else np.random.default_rng(size))
    return hashes, [hashlib.sha256(f"million-{number}".encode()).hexdigest() for number in range(size)]


def synthetic_hashes(real_hashes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` × 8 hashes: a real picture's, each hash with DISTINCT_FLIPS bits flipped (on average)."""
    sources = real_hashes[rng.integers(0, len(real_hashes), size=size)]
    flip_chance = (DISTINCT_FLIPS[0] + DISTINCT_FLIPS[1]) / 2 / 64
    bits = rng.random((size, 8, 64)) < flip_chance
    masks = np.packbits(bits, axis=2, bitorder="little").view("<u8").reshape(size, 8)
    return sources ^ masks


def _content_row(key: str) -> dict:
    return {"hash": key, "width": 4000, "height": 3000, "format": "JPEG", "analysed_at": STATE_SECONDS, "needs_scan": False}


def _file_row(path: str, key: str) -> dict:
    stat = os.stat(path)
    return {
        "path": path,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,
        "device": stat.st_dev,
        "content_hash": key,
        "state": "indexed",
        "error": None,
        "attempts": 0,
        "next_attempt_at": 0.0,
        "seen_at": STATE_SECONDS,
        "changed_at": STATE_SECONDS,
        "indexed_at": STATE_SECONDS,
    }


def _pair_row(first: str, second: str, score: float = 0.9) -> dict:
    low, high = sorted((first, second))
    return {"first": low, "second": high, "score": score}


def _rejected_rows(numbers: range, keys: list[str], rng: np.random.Generator) -> list[dict]:
    """``REJECTED_PER_CONTENT`` rejected verdicts for each of ``numbers``, with contents before it (a scan
    compares new pictures with those it knows); a pair drawn twice, or planted, is stored once."""
    start = max(numbers.start, 1)
    partners = rng.integers(0, np.arange(start, numbers.stop)[:, None], size=(numbers.stop - start, REJECTED_PER_CONTENT))
    scores = rng.uniform(*REJECTED_SCORES, size=partners.shape)
    return [
        _pair_row(keys[number], keys[partner], score)
        for number, row, row_scores in zip(range(start, numbers.stop), partners.tolist(), scores.tolist(), strict=True)
        for partner, score in zip(row, row_scores, strict=True)
    ]


# -- the table ---------------------------------------------------------------------------------------


COLUMNS = (
    ("N files", "size", "{:,}"),
    ("built in s", "built_s", "{:.0f}"),
    ("first reports s", "first_s", "{:.1f}"),
    ("its peak MB", "first_peak_mb", "{:,.0f}"),
    ("no-change scan (skips, as the service) s", "scan_s", "{:.1f}"),
    ("its peak MB", "scan_peak_mb", "{:,.0f}"),
    ("a setting changed: regroup and reports s", "regroup_s", "{:.1f}"),
    ("its peak MB", "regroup_peak_mb", "{:,.0f}"),
    ("reconcile walk s", "walk_s", "{:.1f}"),
    ("its peak MB", "walk_peak_mb", "{:,.0f}"),
    ("one new file: index s", "new_index_s", "{:.1f}"),
    ("then scan s", "new_scan_s", "{:.1f}"),
    ("its unverifiable candidates", "unverifiable", "{:,}"),
    ("their peak MB", "new_peak_mb", "{:,.0f}"),
    (f"{GONE_FILES} files gone, one new: scan s", "gone_scan_s", "{:.1f}"),
    ("its peak MB", "gone_peak_mb", "{:,.0f}"),
    ("state MB", "state_mb", "{:,.0f}"),
)
BEFORE_COLUMNS = (
    ("no-change scan, before s", "before_scan_s", "{:.1f}"),
    ("its peak MB", "before_scan_peak_mb", "{:,.0f}"),
    ("reconcile walk, before s", "before_walk_s", "{:.1f}"),
    ("its peak MB", "before_walk_peak_mb", "{:,.0f}"),
)


def print_table(rows: list[dict], before: bool = False) -> None:
    in_mb = [{**row, **{f"{key}_mb": value / 1e6 for key, value in row.items() if key.endswith(("peak", "bytes"))}} for row in rows]
    for row in in_mb:
        row["state_mb"] = row["state_bytes_mb"]
    print_markdown(in_mb, COLUMNS + BEFORE_COLUMNS if before else COLUMNS)


if __name__ == "__main__":
    sys.exit(main())
