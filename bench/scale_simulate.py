"""The fingerprint-level simulation of bench/scale: libraries of up to 1,000,000 pictures without the pictures.

1. A few thousand real pictures of bench/scale's pool are indexed once with the real CLI
   (``base/``): the state then holds their real fingerprints.
2. For each size, a copy of that state gets synthetic contents until it holds N: each one's
   fingerprints are made from real ones, written through the real state functions as the
   indexer writes them (``features`` row as the embedded backend stores it, ``contents`` by
   ``record_content``, ``files`` by ``mark_seen`` and ``mark_indexed``), needing a scan.
   - a *distinct* content: the hashes of a real picture with 12 to 32 of each hash's 64 bits
     flipped (so some are near neighbours, as look-alikes are), a thumbnail blended from two
     other pictures, keypoints and descriptors drawn from four others with bits flipped;
   - a *planted copy* (one in COPY_EVERY): a content copied with a few bits flipped in its
     hashes and descriptors, a little noise on its thumbnails, its keypoints jittered, a
     tenth of them dropped.
3. The real ``scan`` runs on it (subprocess, debug log for the number of candidate pairs);
   then the grouping and the reports are timed through the real functions; then 100
   synthetic contents (50 distinct, 50 copies) are added and ``scan`` runs again.

Files of synthetic contents do not exist on disk: the report shows placeholders for them.
Resumable: every size's state and results stay in its folder; a finished size is not run again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dupe_scanner.analysis.features import Features

COPY_EVERY = 20  # planted copies: one content in 20
ADDED = 100
DISTINCT_FLIPS = (12, 32)  # bits flipped in each hash of a distinct content
COPY_HASH_FLIPS = 3  # at most, in each hash of a copy
DESCRIPTOR_FLIPS = 10  # bits flipped in each descriptor drawn for a distinct content
COPY_DESCRIPTOR_FLIPS = 4  # at most, for a copy
INSERT_BATCH = 2000
POINTS_A_DONOR = 15  # keypoints a distinct content draws from each real picture, with ``--simulate-points``
RICH_POINTS = 10  # keypoints a real picture needs to give any then (a flat one has none)
SETTINGS = '[paths]\nstate = "state/state.db"\nreports = "reports"\n'


def simulate(sizes: list[int], pool, base_count: int, root: Path, started: float, max_seconds: float, points: int | None = None) -> None:
    """``points``: a distinct content's keypoints, as many as its shape donor has (None) or this many."""
    base = index_base(pool, base_count, root / f"base-{base_count}")
    rows = []
    for size in sorted(sizes):
        if time.perf_counter() - started > max_seconds:
            print(f"simulation N={size}: not started, past --max-seconds", flush=True)
            break
        folder = root / (f"size-{size}" if points is None else f"size-{size}-points-{points}")
        rows.append(run_simulated(base, size, folder, points))
        print_table(rows)


# -- the base: real pictures, really indexed -------------------------------------------------------


def index_base(pool, count: int, folder: Path) -> Path:
    """``folder`` with a state of ``count`` real pictures indexed by the real CLI (once)."""
    from bench.scale import measured
    from dupe_scanner.analysis.features import ANALYSER

    done = folder / ".complete"
    if done.exists() and done.read_text().split()[-1] == ANALYSER:
        return folder  # indexed by this analyser: an older one's fingerprints would be ignored by the scan
    names = pool.sequence(count)
    pictures = pool.link(names, folder.parent / f"base-pictures-{count}")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "settings.toml").write_text(SETTINGS)
    print(f"simulation: indexing {count} real pictures", flush=True)
    seconds, _, _ = measured([*cli(folder), "index", "--dir", str(pictures)], cwd=folder)
    families = {str(pictures / name): pool.labels[name]["family"] for name in names}
    (folder / "families.json").write_text(json.dumps(families))
    done.write_text(f"{seconds:.1f} {ANALYSER}")
    return folder


def cli(folder: Path) -> list[str]:
    return [sys.executable, "-m", "dupe_scanner", "--config", str(folder / "settings.toml")]


# -- one size ------------------------------------------------------------------------------------------


def run_simulated(base: Path, size: int, folder: Path, points: int | None = None) -> dict:
    from dupe_scanner.analysis.features import ANALYSER

    results_path = folder / "results.json"
    synthesised = folder / ".synthesised"
    if not (synthesised.exists() and synthesised.read_text().split()[-1] == ANALYSER):
        synthesise(base, size, folder, points)  # none yet, or made from another analyser's fingerprints
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if "added_scan_s" in results:
        return results
    save = lambda: results_path.write_text(json.dumps(results))  # noqa: E731
    if "scan_s" not in results:
        results.update(size=size, **timed_scan(folder))
        results.update(report_timing(folder))
        results.update(score(folder, base))
        save()
    if not results.get("added_inserted"):
        add_contents(folder, size, ADDED, points)
        results["added_inserted"] = True
        save()
    added = timed_scan(folder)
    results.update(added_scan_s=added["scan_s"], added_peak=added["scan_peak"], added_candidates=added["candidates"])
    results.update({f"added_{name}": value for name, value in score(folder, base).items()})
    results["state_bytes"] = sum(p.stat().st_size for p in (folder / "state").rglob("*") if p.is_file())
    save()
    return results


def synthesise(base: Path, size: int, folder: Path, points: int | None = None) -> None:
    """A copy of the base state, filled up to ``size`` contents with synthetic ones."""
    from dupe_scanner.analysis.features import ANALYSER

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "state").mkdir(parents=True)
    (folder / "settings.toml").write_text(SETTINGS)
    copy_state(base / "state" / "state.db", folder / "state" / "state.db")
    real = read_real(folder, points)
    count = size - len(real.keys)
    if count < 0:
        raise SystemExit(f"simulation N={size} is smaller than its base of {len(real.keys)} real pictures")
    print(f"simulation N={size}: synthesising {count} contents", flush=True)
    started = time.perf_counter()
    planted = insert(folder, real, range(count), tag="s")
    (folder / "planted.json").write_text(json.dumps(planted))
    (folder / ".synthesised").write_text(f"{time.perf_counter() - started:.1f} {ANALYSER}")


def add_contents(folder: Path, size: int, count: int, points: int | None = None) -> None:
    """``count`` more synthetic contents after the first scan: half distinct, half copies."""
    real = read_real(folder, points)
    synthesised = size - len(real.keys)
    planted = insert(folder, real, range(synthesised, synthesised + count), tag="a", added_below=size)
    old = json.loads((folder / "planted.json").read_text())
    (folder / "planted.json").write_text(json.dumps(old + planted))


def copy_state(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite state (its write-ahead log included), by SQLite's backup."""
    with sqlite3.connect(source) as old, sqlite3.connect(target) as new:
        old.backup(new)


# -- the real fingerprints ----------------------------------------------------------------------------


class Real:
    """The real pictures' decoded features, by position, and their contents' descriptions.

    ``points``: a distinct content's keypoints: as many as its shape donor has (None), or this
    many, drawn ``POINTS_A_DONOR`` from each of as many real pictures as that takes, of those
    with ``RICH_POINTS`` or more (a camera's photograph has 160; the pools' pictures fewer).
    """

    def __init__(self, keys: list[str], features: list, infos: list[tuple[int, int, str]], points: int | None = None):
        self.keys, self.features, self.infos, self.points = keys, features, infos, points

    @cached_property
    def rich(self) -> list:
        return [f for f in self.features if min(len(f.descriptors), len(f.mirror_descriptors)) >= RICH_POINTS]


def read_real(folder: Path, points: int | None = None) -> Real:
    """The base's real contents: the state's rows whose files exist on disk (``points``: see ``Real``)."""
    from dupe_scanner.analysis.features import ANALYSER, decode

    with sqlite3.connect(folder / "state" / "state.db") as connection:
        rows = connection.execute(
            "SELECT f.hash, f.data, c.width, c.height, c.format FROM features f JOIN contents c ON c.hash = f.hash "
            "WHERE f.analyser = ? AND f.hash IN (SELECT content_hash FROM files WHERE path NOT LIKE '/synthetic/%') ORDER BY f.hash",
            (ANALYSER,),
        ).fetchall()
    return Real([r[0] for r in rows], [decode(r[1]) for r in rows], [(r[2], r[3], r[4]) for r in rows], points)


# -- making fingerprints -------------------------------------------------------------------------------


def flip_bits(words: np.ndarray, flips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``words`` (uint64) with ``flips[i]`` random bits of word i flipped."""
    out = words.copy()
    for i, count in enumerate(flips):
        for bit in rng.choice(64, size=int(count), replace=False):
            out[i] ^= np.uint64(1) << np.uint64(int(bit))
    return out


def flip_descriptor_bits(descriptors: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``most`` random bits flipped in each 256-bit descriptor."""
    if not len(descriptors) or most == 0:
        return descriptors.copy()
    bits = np.unpackbits(descriptors, axis=1)
    rows = np.repeat(np.arange(len(bits)), most)
    columns = rng.integers(0, bits.shape[1], size=len(rows))
    bits[rows, columns] ^= rng.integers(0, 2, size=len(rows), dtype=np.uint8)  # each flip happens or not: 0..most
    return np.packbits(bits, axis=1)


def stretched(picture: np.ndarray) -> np.ndarray:
    """A grey thumbnail stretched to the full range, as the analyser stores it."""
    low, high = float(picture.min()), float(picture.max())
    scale = 255.0 / (high - low) if high > low else 1.0
    return np.clip((picture - low) * scale, 0, 255).astype(np.uint8)


def resized(picture: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    if picture.ndim == 3:
        channels = [
            np.asarray(Image.fromarray(picture[..., c]).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)) for c in range(picture.shape[2])
        ]
        return np.stack(channels, axis=2).astype(np.float32)
    return np.asarray(Image.fromarray(picture).resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def drawn_points(donors: list, mirrored: bool, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` keypoints and descriptors drawn from ``donors``, descriptors with bits flipped, points jittered."""
    points, descriptors = [], []
    for donor in donors:
        donor_points = donor.mirror_keypoints if mirrored else donor.keypoints
        donor_descriptors = donor.mirror_descriptors if mirrored else donor.descriptors
        take = min(len(donor_descriptors), -(-count // len(donors)))
        if take:
            chosen = rng.choice(len(donor_descriptors), size=take, replace=False)
            points.append(donor_points[chosen])
            descriptors.append(donor_descriptors[chosen])
    if not points:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    points_array = np.concatenate(points)[:count]
    jittered = np.clip(points_array + rng.normal(0, 0.01, points_array.shape), 0, 1).astype(points_array.dtype)
    return jittered, flip_descriptor_bits(np.concatenate(descriptors)[:count], DESCRIPTOR_FLIPS, rng)


def distinct_features(real: Real, rng: np.random.Generator) -> Features:
    """A new picture: hashes near one real picture's, looks blended from two, keypoints from four others."""
    from dupe_scanner.analysis.features import Features

    picks = rng.choice(len(real.features), size=7, replace=False)
    shape, look_a, look_b, *donors = [real.features[i] for i in picks]
    hashes = flip_bits(shape.hashes, rng.integers(DISTINCT_FLIPS[0], DISTINCT_FLIPS[1] + 1, size=len(shape.hashes)), rng)
    thumb = 0.5 * resized(look_a.thumb, shape.thumb.shape) + 0.5 * resized(look_b.thumb, shape.thumb.shape)
    colour = 0.5 * look_a.colour.astype(np.float32) + 0.5 * look_b.colour.astype(np.float32)
    if real.points is not None:
        chosen = rng.choice(len(real.rich), size=max(len(donors), -(-real.points // POINTS_A_DONOR)), replace=False)
        donors = [real.rich[i] for i in chosen]
    keypoints, descriptors = drawn_points(donors, False, real.points or len(shape.descriptors), rng)
    mirror_keypoints, mirror_descriptors = drawn_points(donors, True, real.points or len(shape.mirror_descriptors), rng)
    return Features(
        hashes=hashes,
        thumb=stretched(thumb + rng.normal(0, 4, thumb.shape)),
        colour=np.clip(colour + rng.normal(0, 3, colour.shape), 0, 255).astype(np.uint8),
        keypoints=keypoints,
        descriptors=descriptors,
        mirror_keypoints=mirror_keypoints,
        mirror_descriptors=mirror_descriptors,
        size=(shape.size.astype(np.float64) * rng.uniform(0.5, 2.0)).astype(shape.size.dtype),
        levels=shape.levels.copy(),
    )


def copy_features(source: Features, rng: np.random.Generator) -> Features:
    """A near copy of ``source``: a few bits, a little noise, a tenth of its keypoints lost."""
    from dupe_scanner.analysis.features import Features

    def kept(points: np.ndarray, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = rng.random(len(descriptors)) >= 0.1
        moved = np.clip(points[keep] + rng.normal(0, 0.002, points[keep].shape), 0, 1).astype(points.dtype)
        return moved, flip_descriptor_bits(descriptors[keep], COPY_DESCRIPTOR_FLIPS, rng)

    keypoints, descriptors = kept(source.keypoints, source.descriptors)
    mirror_keypoints, mirror_descriptors = kept(source.mirror_keypoints, source.mirror_descriptors)
    return Features(
        hashes=flip_bits(source.hashes, rng.integers(0, COPY_HASH_FLIPS + 1, size=len(source.hashes)), rng),
        thumb=np.clip(source.thumb.astype(np.float32) + rng.normal(0, 3, source.thumb.shape), 0, 255).astype(np.uint8),
        colour=np.clip(source.colour.astype(np.float32) + rng.normal(0, 2, source.colour.shape), 0, 255).astype(np.uint8),
        keypoints=keypoints,
        descriptors=descriptors,
        mirror_keypoints=mirror_keypoints,
        mirror_descriptors=mirror_descriptors,
        size=source.size.copy(),
        levels=source.levels.copy(),
    )


def is_planted_copy(number: int) -> bool:
    return number % COPY_EVERY == COPY_EVERY - 1


def synthetic(real: Real, number: int, added_below: int | None = None) -> tuple[Features, int | None, tuple[int, int, str]]:
    """Synthetic content ``number``: (features, the number it copies or None, its description).

    Made from ``number`` alone, so a copy's source is made again rather than kept in memory.
    A copy copies an earlier distinct synthetic content, or a real one (negative: -1 - index).
    ``added_below``: ``number`` is one of the contents added after the first scan of a
    library of that many; half of those are copies, of the library's contents.
    """
    rng = np.random.default_rng(number)
    if added_below is None:
        is_copy, sources_below = is_planted_copy(number), number
    else:
        is_copy, sources_below = number % 2 == 1, added_below - len(real.features)
    if is_copy:
        source = int(rng.integers(-len(real.features), max(sources_below, 1)))
        if source >= 0 and is_planted_copy(source):
            source -= 1  # copies are never next to each other: every copy has a distinct original
        if source >= 0:
            features, _, info = synthetic(real, source)
        else:
            features, info = real.features[-1 - source], real.infos[-1 - source]
        return copy_features(features, rng), source, info
    features = distinct_features(real, rng)
    return features, None, (int(features.size[0]), int(features.size[1]), "JPEG")


# -- writing them as the indexer does -----------------------------------------------------------------


def content_key(number: int) -> str:
    return hashlib.sha256(f"synthetic-{number}".encode()).hexdigest()


def synthetic_path(number: int) -> str:
    return f"/synthetic/{number // 10000:03d}/{number:07d}.jpg"


def insert(folder: Path, real: Real, numbers: Sequence[int], tag: str, added_below: int | None = None) -> list[list[str]]:
    """Write synthetic contents ``numbers`` into the state; returns the planted (original, copy) content pairs."""
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from dupe_scanner.analysis.features import ANALYSER, encode
    from dupe_scanner.backends.base import ImageInfo
    from dupe_scanner.store import contents as content_store
    from dupe_scanner.store import files as file_store
    from dupe_scanner.store.database import open_state, write_transaction
    from dupe_scanner.store.schema import features as features_table

    engine = open_state(folder / "state" / "state.db")
    planted = []
    numbers = list(numbers)
    for start in range(0, len(numbers), INSERT_BATCH):
        now = time.time()
        with write_transaction(engine) as connection:
            for number in numbers[start : start + INSERT_BATCH]:
                made, source, (width, height, kind) = synthetic(real, number, added_below)
                key = content_key(number)
                # The embedded backend's own upsert (EmbeddedBackend._store), in the batch's transaction.
                blob = encode(made)
                statement = sqlite_insert(features_table).values(hash=key, analyser=ANALYSER, data=blob)
                connection.execute(statement.on_conflict_do_update(index_elements=[features_table.c.hash], set_={"analyser": ANALYSER, "data": blob}))
                content_store.record_content(connection, key, ImageInfo(width, height, kind), now)
                path = synthetic_path(number)
                stat = file_store.FileStat(size=10_000 + number, mtime_ns=number, inode=number + 1, device=0)
                file_store.mark_seen(connection, path, stat, now)
                known = file_store.get_by_path(connection, path)
                assert known is not None  # seen just above
                file_store.mark_indexed(connection, known, key, stat, now)
                if source is not None:
                    planted.append([content_key(source) if source >= 0 else real.keys[-1 - source], key])
        print(f"  {tag} {min(start + INSERT_BATCH, len(numbers))}/{len(numbers)}", flush=True)
    engine.dispose()
    return planted


# -- measuring -----------------------------------------------------------------------------------------


def timed_scan(folder: Path) -> dict:
    from bench.scale import measured_with_cpu

    seconds, peak, done, cpu = measured_with_cpu([*cli(folder), "--log-level", "debug", "scan"], cwd=folder)
    return {"scan_s": seconds, "scan_cpu_s": cpu, "scan_peak": peak, "candidates": candidates_asked(done.stderr)}


def candidates_asked(debug_log: str) -> int | None:
    """The candidate pairs a scan asked, over every part it compared in (a large first scan
    compares its pictures a part at a time, and logs each part's candidates)."""
    parts = re.findall(r"(\d+) candidate pairs among \d+ contents", debug_log)
    return sum(int(count) for count in parts) if parts else None


def report_timing(folder: Path) -> dict:
    """Grouping and report writing of the scanned state, timed through the real functions (own process)."""
    from bench.__main__ import REPO
    from bench.scale import measured

    _, _, done = measured([sys.executable, "-m", "bench.scale_simulate", "report-timing", str(folder)], cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report_timing_here(folder: Path) -> None:
    from dupe_scanner.reports import write_reports
    from dupe_scanner.scanning import current_groups
    from dupe_scanner.settings import ReportSettings
    from dupe_scanner.store.database import open_state

    engine = open_state(folder / "state" / "state.db")
    started = time.perf_counter()
    groups, _ = current_groups(engine, 0.6, False)
    grouped = time.perf_counter()
    write_reports(groups, folder / "timed-reports", ReportSettings(), 0.6)
    written = time.perf_counter()
    print(json.dumps({"groups": len(groups), "group_s": grouped - started, "report_s": written - grouped}))


def score(folder: Path, base: Path) -> dict:
    """Recall of the planted copies at 0.6, and the wrong pairs at 0.6 that have a synthetic content.

    A pair is right when both contents show one picture: a content's family is its tile
    (real contents, from the pool's labels), its own (a distinct synthetic content), or its
    original's (a planted copy, of a real or a synthetic content).
    """
    planted = json.loads((folder / "planted.json").read_text())
    tile_of_path = json.loads((base / "families.json").read_text())
    with sqlite3.connect(folder / "state" / "state.db") as connection:
        found = {tuple(sorted(row)) for row in connection.execute("SELECT first, second FROM pairs WHERE score >= 0.6")}
        path_of = dict(connection.execute("SELECT content_hash, path FROM files WHERE state = 'indexed'"))
    original_of = {copy: original for original, copy in planted}

    def family(content: str) -> str:
        while content in original_of:
            content = original_of[content]
        return tile_of_path.get(path_of.get(content, ""), content)

    synthetic = {content for content, path in path_of.items() if path.startswith("/synthetic/")}
    with_synthetic = [pair for pair in found if pair[0] in synthetic or pair[1] in synthetic]
    wrong = [pair for pair in with_synthetic if family(pair[0]) != family(pair[1])]
    planted_pairs = {tuple(sorted(pair)) for pair in planted}
    return {
        "planted": len(planted_pairs),
        "recall": len(planted_pairs & found) / len(planted_pairs) if planted_pairs else 1.0,
        "synthetic_pairs": len(with_synthetic),
        "wrong_pairs": len(wrong),
    }


def print_table(rows: list[dict]) -> None:
    cell = lambda row, column, form: format(row[column], form) if row.get(column) is not None else "-"  # noqa: E731
    print()
    print("Fingerprint simulation (synthetic fingerprints from real ones, real state, real scan; seconds wall time; MB peak RSS of all processes)")
    print(f"{'N':>9s} {'scan s':>8s} {'CPU s':>8s} {'scan MB':>8s} {'candidates':>10s} {'groups':>7s} {'group s':>8s} {'report s':>8s} "
          f"{'+100 scan s':>11s} {'+100 cand.':>10s} {'state MB':>9s} {'recall':>6s} {'wrong':>9s} {'+100 recall':>11s}")
    for row in rows:
        print(
            f"{row['size']:9d} {cell(row, 'scan_s', '.1f'):>8s} {cell(row, 'scan_cpu_s', '.1f'):>8s} {row['scan_peak'] / 2**20:8.0f} "
            f"{cell(row, 'candidates', 'd'):>10s} "
            f"{cell(row, 'groups', 'd'):>7s} {cell(row, 'group_s', '.2f'):>8s} {cell(row, 'report_s', '.2f'):>8s} "
            f"{cell(row, 'added_scan_s', '.1f'):>11s} {cell(row, 'added_candidates', 'd'):>10s} {row.get('state_bytes', 0) / 2**20:9.0f} "
            f"{row['recall']:6.3f} {cell(row, 'wrong_pairs', 'd'):>4s}/{cell(row, 'synthetic_pairs', 'd'):<4s} "
            f"{cell(row, 'added_recall', '.3f'):>11s}"
        )
    print("(CPU s: the first scan's, all processes; candidates: candidate pairs the scan asked, every part's, from its debug log;")
    print(" recall: planted copies found at 0.6 by the first scan;")
    print(" wrong: pairs at 0.6 or more joining a synthetic content to another picture / all such pairs; "
          "+100 recall: after the added scan, over every planted copy)")
    print(flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["report-timing"]:
        _report_timing_here(Path(sys.argv[2]))
