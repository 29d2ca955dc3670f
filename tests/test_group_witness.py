"""A scan whose changes cannot have moved a group leaves the reports as they are without
reading what the groups are made from; a change that can forms them again.

Each scan runs through the command, as a person or the service runs it, and its reports are
checked against those a full scan of the same files writes."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dupe_scanner import scanning
from dupe_scanner.group_witness import ReportedFiles, Witness
from dupe_scanner.store import contents as content_store
from dupe_scanner.store.database import open_state, write_transaction
from dupe_scanner.values import ImageInfo, ScoredPair
from tests.cli import call_main, write_settings
from tests.photos import make_photo, save

UNMOVED = "nothing changed that can move a group"


@pytest.fixture(autouse=True)
def no_allowance_for_late_writers(monkeypatch):
    """A test's files are all stored within a second of its scans: with no allowance for a
    writer stamping a file before a scan began and storing it after, a file stored before a
    scan counts as one that scan read."""
    monkeypatch.setattr(scanning, "_commit_allowance", lambda engine: 0.0)


@pytest.fixture
def library(tmp_path) -> tuple[Path, Path]:
    """A photograph and a smaller copy of it (one group), and two photographs like nothing
    else, indexed and scanned: (the photos' folder, the settings)."""
    photos = tmp_path / "photos"
    original = make_photo(7)
    save(original, photos / "a.jpg", quality=90)
    save(original.resize((320, 240), Image.Resampling.LANCZOS), photos / "a-small.jpg", quality=90)
    save(make_photo(8), photos / "lone.jpg", quality=90)
    save(make_photo(9), photos / "other.jpg", quality=90)
    settings = write_settings(tmp_path)
    index(photos, settings)
    assert "Found 1 duplicate groups with 2 images." in call_main("scan", config=settings).stdout
    return photos, settings


def index(photos: Path, settings: Path) -> None:
    indexed = call_main("index", "--dir", str(photos), config=settings)
    assert indexed.returncode == 0, indexed.stderr


def scanned(settings: Path) -> tuple[str, dict]:
    """Scan: what it logged, and ``duplicates.json``."""
    scan = call_main("--log-level", "info", "scan", config=settings)
    assert scan.returncode == 0, scan.stderr
    return scan.stderr, json.loads((settings.parent / "reports" / "duplicates.json").read_text())


def as_a_full_scan_reports(settings: Path) -> dict:
    assert call_main("scan", "--full", config=settings).returncode == 0
    return json.loads((settings.parent / "reports" / "duplicates.json").read_text())


def formed_again(settings: Path) -> dict:
    """Scan, which must form the groups again: its ``duplicates.json``, as a full scan's."""
    said, groups = scanned(settings)
    assert UNMOVED not in said
    assert groups == as_a_full_scan_reports(settings)
    return groups


def content_of(settings: Path, path: Path) -> str:
    with sqlite3.connect(settings.parent / "state" / "state.db") as connection:
        return connection.execute("SELECT content_hash FROM files WHERE path = ?", (str(path),)).fetchone()[0]


def report_files(settings: Path) -> dict[Path, tuple[int, int]]:
    return {path: (path.stat().st_mtime_ns, path.stat().st_ino) for path in (settings.parent / "reports").iterdir() if path.is_file()}


def test_a_new_picture_like_nothing_leaves_the_reports_without_reading_the_groups(library):
    photos, settings = library
    before = report_files(settings)
    save(make_photo(10), photos / "new.jpg", quality=90)
    index(photos, settings)

    said, groups = scanned(settings)
    assert "compared 1 new" in said and UNMOVED in said
    assert report_files(settings) == before
    assert groups == as_a_full_scan_reports(settings)


def test_a_deleted_picture_that_was_in_no_group_leaves_the_reports_too(library):
    photos, settings = library
    (photos / "lone.jpg").unlink()
    index(photos, settings)
    said, groups = scanned(settings)
    assert UNMOVED in said
    assert groups == as_a_full_scan_reports(settings)


def test_the_scan_after_a_regroup_can_leave_the_reports_again(library):
    photos, settings = library
    shutil.copyfile(photos / "lone.jpg", photos / "lone-copy.jpg")
    index(photos, settings)
    said, _ = scanned(settings)
    assert UNMOVED not in said
    save(make_photo(10), photos / "new.jpg", quality=90)
    index(photos, settings)
    said, groups = scanned(settings)
    assert UNMOVED in said and len(groups) == 2


def rewrite_grouped_picture(photos: Path) -> None:
    save(make_photo(11), photos / "a-small.jpg", quality=90)


def rename_grouped_picture(photos: Path) -> None:
    (photos / "a-small.jpg").rename(photos / "a-renamed.jpg")


def copy_lone_picture(photos: Path) -> None:
    shutil.copyfile(photos / "lone.jpg", photos / "lone-copy.jpg")


def near_copy_of_lone_picture(photos: Path) -> None:
    save(Image.open(photos / "lone.jpg").resize((320, 240), Image.Resampling.LANCZOS), photos / "lone-small.jpg", quality=90)


@pytest.mark.parametrize(
    "change",
    [
        lambda photos: (photos / "a-small.jpg").unlink(),
        rewrite_grouped_picture,
        rename_grouped_picture,
        copy_lone_picture,
        near_copy_of_lone_picture,
    ],
    ids=["grouped picture deleted", "grouped picture rewritten", "grouped picture renamed", "byte-identical copy", "near copy"],
)
def test_a_change_that_can_move_a_group_forms_the_groups_again(library, change):
    photos, settings = library
    change(photos)
    index(photos, settings)
    assert formed_again(settings) != {"group-1": [str(photos / "a-small.jpg"), str(photos / "a.jpg")]}


def test_a_grouped_file_rewritten_while_its_picture_stays_in_the_group_forms_the_groups_again(library):
    """Its old picture is still held and still matches, its new one matches nothing: only
    the file says the group changed."""
    photos, settings = library
    shutil.copyfile(photos / "a.jpg", photos / "a-copy.jpg")
    index(photos, settings)
    _, groups = scanned(settings)
    assert len(groups["group-1"]) == 3
    save(make_photo(11), photos / "a-copy.jpg", quality=90)
    index(photos, settings)
    assert formed_again(settings) == {"group-1": [str(photos / "a-small.jpg"), str(photos / "a.jpg")]}


def test_forgetting_a_picture_whose_pairs_the_groups_were_made_from_forms_them_again(library, tmp_path):
    """A grouped picture deleted is forgotten two minutes later, by whichever scan comes then,
    and its pairs with it: they were among what the last groups were made from."""
    photos, settings = library
    (photos / "a-small.jpg").unlink()
    index(photos, settings)
    said, _ = scanned(settings)
    assert UNMOVED not in said
    with sqlite3.connect(tmp_path / "state" / "state.db") as connection:  # the grace has passed since
        connection.execute("UPDATE files SET changed_at = changed_at - 3600 WHERE state = 'gone'")
    save(make_photo(10), photos / "new.jpg", quality=90)
    index(photos, settings)
    formed_again(settings)


def test_a_grouped_picture_compared_again_forms_the_groups_again(library, tmp_path):
    """As a scan stopped by an older version may leave it: its stored pairs are replaced."""
    photos, settings = library
    with sqlite3.connect(tmp_path / "state" / "state.db") as connection:
        connection.execute("UPDATE contents SET needs_scan = 1 WHERE hash = ?", (content_of(settings, photos / "a.jpg"),))
    formed_again(settings)


def test_pairs_another_process_stored_form_the_groups_again(library, tmp_path):
    photos, settings = library
    lone, other = content_of(settings, photos / "lone.jpg"), content_of(settings, photos / "other.jpg")
    engine = open_state(tmp_path / "state" / "state.db")
    try:
        with write_transaction(engine) as connection:  # as a later version's check, or a repair, might
            first, second = sorted((lone, other))
            content_store.replace_pairs(connection, [ScoredPair(first, second, 0.9)], [])
    finally:
        engine.dispose()
    save(make_photo(10), photos / "new.jpg", quality=90)
    index(photos, settings)

    said, groups = scanned(settings)
    assert UNMOVED not in said
    assert sorted(groups.values()) == [[str(photos / "a-small.jpg"), str(photos / "a.jpg")], [str(photos / "lone.jpg"), str(photos / "other.jpg")]]


def test_the_record_of_reported_files_holds_the_paths_it_was_made_from_and_nothing_is_read_from_damage():
    paths = ["/photos/a.jpg", "/photos/caf\u00e9 <b>&.jpg", "/photos/\udcff-not-utf8.jpg"]
    record = ReportedFiles.of("digest", 7, paths)
    again = ReportedFiles.decoded(record.encoded())
    assert again is not None and again.digest == "digest" and again.pairs_revision == 7
    assert all(again.holds(path) for path in paths) and not again.holds("/photos/b.jpg")
    assert not ReportedFiles.of("digest", 0, []).holds("/photos/a.jpg")
    for damaged in ("", "[]", "{}", '{"digest": "d", "pairs_revision": 1, "path_keys": "not base64!"}', "not json"):
        assert ReportedFiles.decoded(damaged) is None
    assert np.array_equal(again.path_keys, record.path_keys)
    shuffled = json.loads(record.encoded())
    shuffled["path_keys"] = base64.b64encode(record.path_keys[::-1].astype("<u8").tobytes()).decode("ascii")  # as edited by hand
    read = ReportedFiles.decoded(json.dumps(shuffled))
    assert read is not None and all(read.holds(path) for path in paths)


def test_the_witness_is_moved_by_a_write_naming_a_matching_picture_and_counts_each_write(tmp_path):
    engine = open_state(tmp_path / "state.db")
    try:
        with write_transaction(engine) as connection:
            for content in ("a", "b", "lone"):
                content_store.record_content(connection, content, ImageInfo(64, 64, "JPEG"), 0.0)
            content_store.replace_pairs(connection, [ScoredPair("a", "b", 0.9), ScoredPair("a", "lone", 0.2)], [])

            witness = Witness(threshold=0.6)
            witness.storing(connection, ["lone"], [ScoredPair("b", "lone", 0.3)])
            witness.forgetting(connection, ["lone"], file_rows=0)
            assert not witness.moved and witness.writes == 2
            for write in (
                lambda seen: seen.storing(connection, ["lone"], [ScoredPair("b", "lone", 0.6)]),  # a match found
                lambda seen: seen.storing(connection, ["lone"], [ScoredPair("a", "b", 0.3)]),  # a pair outside what was compared
                lambda seen: seen.storing(connection, ["a"], []),  # a matching picture's pairs replaced
                lambda seen: seen.forgetting(connection, ["a"], file_rows=0),  # a matching picture forgotten
                lambda seen: seen.forgetting(connection, [], file_rows=1),  # a long-gone file's row can make its content a copy
            ):
                seen = Witness(threshold=0.6)
                write(seen)
                assert seen.moved
    finally:
        engine.dispose()


def test_the_pairs_revision_counts_writes_that_store_replace_or_forget_pairs_and_no_others(tmp_path):
    engine = open_state(tmp_path / "state.db")
    try:
        with write_transaction(engine) as connection:
            for content in ("a", "b"):
                content_store.record_content(connection, content, ImageInfo(64, 64, "JPEG"), 0.0)
            revisions = [content_store.pairs_revision(connection)]
            for write in (
                lambda: content_store.replace_pairs(connection, [], []),  # a completion that verified nothing: no write
                lambda: content_store.replace_pairs(connection, [ScoredPair("a", "b", 0.9)], []),
                lambda: content_store.replace_pairs(connection, [], ["a"]),  # the pairs of "a" replaced by none
                lambda: content_store.delete_contents(connection, ["nothing known"]),
                lambda: content_store.delete_contents(connection, ["b"]),
            ):
                write()
                revisions.append(content_store.pairs_revision(connection))
            assert revisions == [0, 0, 1, 2, 2, 3]
    finally:
        engine.dispose()
