"""An incremental scan and a full scan of the same state find the same pairs.

Each picture's keypoint search keeps a bounded number of candidates, so a pair found only
because the older picture's search listed the newer one would be found by a full scan and
missed by the incremental scans before it. Here the bound is lowered to two places so that
a handful of crops of one photo reaches it, as a popular photo's copies do in a library.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

import dupe_scanner.analysis.candidates as candidates
import dupe_scanner.scanning as scanning
from dupe_scanner.backends.embedded import EmbeddedBackend
from dupe_scanner.scanning import update_pairs
from dupe_scanner.store import contents as content_store
from dupe_scanner.store.database import open_state, read_transaction, write_transaction
from dupe_scanner.store.schema import contents
from tests.backend_helpers import verified_by
from tests.photos import make_photo, save

# Corners and edges of one photo, 60 to 75 % of each side: each overlaps the others and
# lies inside the original, and their whole-frame hashes are too far apart to be proposed
# by the hash alone.
CROPS = [(0.0, 0.0, 0.75, 0.75), (0.25, 0.25, 1.0, 1.0), (0.3, 0.0, 1.0, 0.7), (0.0, 0.3, 0.7, 1.0), (0.2, 0.2, 0.8, 0.8), (0.1, 0.0, 0.85, 0.8)]


@pytest.fixture
def state(tmp_path):
    engine = open_state(tmp_path / "state.db")
    backend = EmbeddedBackend(
        engine, workers=2, max_image_pixels=50_000_000, keypoint_file=tmp_path / "state.db.keypoints", hash_file=tmp_path / "state.db.hashes"
    )
    yield engine, backend
    backend.close()
    engine.dispose()


def pictures(folder: Path) -> list[Path]:
    photo = make_photo(41, size=(800, 600))
    paths = [save(photo, folder / "photo.jpg", quality=92)]
    for number, (left, top, right, bottom) in enumerate(CROPS):
        box = (int(left * photo.width), int(top * photo.height), int(right * photo.width), int(bottom * photo.height))
        paths.append(save(photo.crop(box), folder / f"crop-{number}.jpg", quality=90))
    return paths


def add(engine, backend, paths: list[Path], now: float) -> None:
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        info = backend.index(digest, path)
        with write_transaction(engine) as connection:
            content_store.record_content(connection, digest, info, now)


def stored(engine) -> dict[tuple[str, str], float]:
    with read_transaction(engine) as connection:
        return {(pair.first, pair.second): round(pair.score, 6) for pair in content_store.stored_pairs(connection, 0.0)}


def test_pictures_arriving_in_batches_and_scanned_each_time_end_with_the_pairs_of_a_full_scan(state, tmp_path, monkeypatch):
    monkeypatch.setattr(candidates, "MOST_PER_IMAGE", 2)
    engine, backend = state
    paths = pictures(tmp_path / "photos")
    for batch, now in ((paths[:3], 1000.0), (paths[3:5], 2000.0), (paths[5:], 3000.0)):
        add(engine, backend, batch, now)
        update_pairs(engine, backend, threshold=0.6, full=False)
    incremental = stored(engine)

    update_pairs(engine, backend, threshold=0.6, full=True)

    assert stored(engine) == incremental
    assert sum(score >= 0.6 for score in incremental.values()) >= 2  # duplicates were found, not only strangers


def test_a_new_picture_is_compared_with_the_library_even_when_the_clock_went_back(state, tmp_path, monkeypatch):
    engine, backend = state
    photo, crop = pictures(tmp_path / "photos")[:2]
    add(engine, backend, [photo], 5000.0)
    update_pairs(engine, backend, threshold=0.6, full=False)

    add(engine, backend, [crop], 1000.0)  # analysed "before" the photo: the clock was set back
    update_pairs(engine, backend, threshold=0.6, full=False)

    assert [score for score in stored(engine).values() if score >= 0.6]


def recording(find_pairs, asked: list, what):
    """``find_pairs``, noting ``what(changed)`` of each call in ``asked``."""

    def recorded(changed, *args, **kwargs):
        asked.append(what(changed))
        return find_pairs(changed, *args, **kwargs)

    return recorded


class Stopped(Exception):
    """A scan stopped where it was: the service stopped, the machine went down."""


def arriving_one_by_one(engine, backend, folder: Path) -> None:
    for number, path in enumerate(pictures(folder)):
        add(engine, backend, [path], 1000.0 + number)


def test_a_full_comparison_made_in_parts_stores_the_pairs_of_one_made_at_once(state, tmp_path, monkeypatch):
    monkeypatch.setattr(candidates, "MOST_PER_IMAGE", 2)  # which side asks for a pair matters
    engine, backend = state
    arriving_one_by_one(engine, backend, tmp_path / "photos")
    update_pairs(engine, backend, threshold=0.6, full=True)
    at_once = stored(engine)

    monkeypatch.setattr(scanning, "COMPARISON_PART", 2)
    parts: list[int] = []
    told: list[tuple[str, int, int]] = []
    monkeypatch.setattr(backend, "find_pairs", recording(backend.find_pairs, parts, len))
    update_pairs(engine, backend, threshold=0.6, full=True, progress=lambda *said: told.append(said))

    assert parts == [2, 2, 2, 1]
    assert stored(engine) == at_once
    assert sum(score >= 0.6 for score in at_once.values()) >= 2
    assert {step for step, _, _ in told} == {"comparing images"} and {total for _, _, total in told} == {7}
    done = [done for _, done, _ in told]
    assert done == sorted(done) and done[-1] == 7  # one count for all the parts, never going back


def test_a_scan_stopped_during_a_part_resumes_there_and_ends_with_the_pairs_of_one_never_stopped(state, tmp_path, monkeypatch):
    engine, backend = state
    arriving_one_by_one(engine, backend, tmp_path / "photos")
    update_pairs(engine, backend, threshold=0.6, full=True)
    never_stopped = stored(engine)

    monkeypatch.setattr(scanning, "COMPARISON_PART", 3)
    ask = backend.find_pairs
    asked: list[list[str]] = []

    def stopped_in_the_second_part(changed, *args, **kwargs):
        asked.append(list(changed))
        if len(asked) == 2:
            raise Stopped
        return ask(changed, *args, **kwargs)

    monkeypatch.setattr(backend, "find_pairs", stopped_in_the_second_part)
    with pytest.raises(Stopped):
        update_pairs(engine, backend, threshold=0.6, full=True)
    with read_transaction(engine) as connection:
        assert content_store.needing_scan(connection) == asked[1] + sorted_by_arrival(engine)[6:]  # the first part is done

    asked.clear()
    monkeypatch.setattr(backend, "find_pairs", recording(ask, asked, list))
    reported: list[tuple[int, int]] = []
    resumed = update_pairs(engine, backend, threshold=0.6, full=False, between_parts=lambda *said: reported.append(said))
    assert resumed == 4  # the rest, not everything again
    assert [len(part) for part in asked] == [3, 1]
    assert reported == [(6, 7)]  # the reports between parts count what the stopped scan compared too
    assert stored(engine) == never_stopped


def sorted_by_arrival(engine) -> list[str]:
    with read_transaction(engine) as connection:
        return [row.hash for row in connection.execute(select(contents.c.hash).order_by(contents.c.analysed_at))]


def test_a_copy_arriving_after_its_original_was_scanned_takes_the_originals_stored_verdicts(state, tmp_path):
    engine, backend = state
    folder = tmp_path / "photos"
    photo = make_photo(41, size=(800, 600))
    original = save(photo, folder / "original.png")
    crop = save(photo.crop((100, 50, 800, 600)), folder / "crop.png")
    resized = save(photo.resize((400, 300), Image.Resampling.LANCZOS), folder / "resized.png")
    key = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in (original, crop, resized)}
    add(engine, backend, [original, crop], 1000.0)
    update_pairs(engine, backend, threshold=0.6, full=False)
    verified = verified_by(backend)

    add(engine, backend, [resized], 2000.0)
    update_pairs(engine, backend, threshold=0.6, full=False)

    pairs = stored(engine)
    score = {frozenset((a, b)): value for (a, b), value in pairs.items()}
    assert score[frozenset((key["original.png"], key["resized.png"]))] >= 0.95  # its twin
    assert score[frozenset((key["crop.png"], key["resized.png"]))] == score[frozenset((key["original.png"], key["crop.png"]))] >= 0.6
    assert verified == [(key["resized.png"], key["original.png"])]  # the twin pair alone
