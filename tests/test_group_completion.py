"""Completing small groups: pictures grouped together through a look-alike, never compared
with each other, are compared before the groups are reported."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from dupe_scanner.decisions import Decisions
from dupe_scanner.groups import DuplicateGroup, FileEntry
from dupe_scanner.scanning import COMPLETE_UP_TO, WEAK_TIE, Grouping, form_groups, formed_again_around, never_compared
from dupe_scanner.settings import KeepSettings
from tests.cli import call_main, write_settings
from tests.photos import make_photo, save


def entry(content: str) -> FileEntry:
    return FileEntry(f"/photos/{content}.jpg", 1000, 1.7e9, 800, 600, "JPEG", content)


def group(anchor: str, *others: str) -> DuplicateGroup:
    members = tuple(entry(content) for content in sorted([anchor, *others]))
    return DuplicateGroup(anchor=entry(anchor).path, members=members, pairs=())


def test_the_pairs_never_compared_with_a_picture_tied_weakly_to_the_anchor_are_asked_for():
    weak, strong = WEAK_TIE - 0.04, 0.85
    pairs = [("hub", "a", weak), ("hub", "b", weak), ("hub", "c", strong), ("hub", "d", strong), ("a", "b", 0.2)]
    # a-b was compared; a-c, a-d, b-c, b-d never were, and each holds a weak tie; c-d holds none.
    assert never_compared([group("hub", "a", "b", "c", "d")], pairs) == [("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")]


def test_two_pictures_each_tied_strongly_to_the_anchor_are_left_as_they_are():
    # Two crops of one photograph at different offsets: far apart, and both belong with it.
    pairs = [("photo", "left-crop", 0.8), ("photo", "right-crop", 0.8)]
    assert never_compared([group("photo", "left-crop", "right-crop")], pairs) == []


def test_a_group_larger_than_the_limit_is_not_completed():
    others = [f"copy-{number:02}" for number in range(COMPLETE_UP_TO)]
    pairs = [("original", other, WEAK_TIE - 0.04) for other in others]
    assert never_compared([group("original", *others)], pairs) == []
    assert len(never_compared([group("original", *others[:-1])], pairs)) == (COMPLETE_UP_TO - 1) * (COMPLETE_UP_TO - 2) // 2


def test_pairs_added_inside_some_groups_regroup_only_those_and_as_forming_every_group_would():
    # Two sets of matching pictures, and byte-identical files of one picture in the first: the
    # pair added between two strangers of the first set splits it; the second set's groups are kept as they were.
    entries = [entry(content) for content in ("hub", "a", "b", "x", "y", "z")] + [FileEntry("/photos/b-copy.jpg", 1000, 1.7e9, 800, 600, "JPEG", "b")]
    pairs = [("hub", "a", 0.61), ("hub", "b", 0.61), ("x", "y", 0.9), ("y", "z", 0.62), ("b", "x", 0.3)]
    grouping = Grouping(pairs, entries, len(entries), Decisions())
    groups = form_groups(grouping, 0.6, unscored_are_far=False)
    added = [("a", "b", 0.1)]

    again, regrouped = formed_again_around(grouping, groups, added, 0.6, KeepSettings())

    assert again.content_pairs == [*pairs, *added]
    assert regrouped == form_groups(again, 0.6, unscored_are_far=False)
    assert [group for group in regrouped if "x" in {member.content_hash for member in group.members}] == [
        group for group in groups if "x" in {member.content_hash for member in group.members}
    ]
    assert len(regrouped) == len(groups) + 1  # hub, a and b's copies: split in two


def content_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_score(database: Path, first: str, second: str) -> float | None:
    with sqlite3.connect(database) as connection:
        found = connection.execute(
            "SELECT score FROM pairs WHERE (first = ? AND second = ?) OR (first = ? AND second = ?)", (first, second, second, first)
        ).fetchone()
    return None if found is None else found[0]


def as_if_compared(database: Path, pairs: list[tuple[Path, Path, float]], never: tuple[Path, Path]) -> None:
    """Leave the state as a scan would have: ``pairs`` found at these scores (what a look-alike
    at the score floor, or a copy, leaves; the pictures here are unrelated), ``never`` never
    compared (not proposed by the search, as look-alikes of one look-alike often are not)."""
    with sqlite3.connect(database) as connection:
        for first, second, score in pairs:
            low, high = sorted([content_of(first), content_of(second)])
            connection.execute("INSERT OR REPLACE INTO pairs (first, second, score) VALUES (?, ?, ?)", (low, high, score))
        low, high = sorted(content_of(path) for path in never)
        connection.execute("DELETE FROM pairs WHERE first = ? AND second = ?", (low, high))


def scan_after_a_new_picture(settings: Path, photos: Path) -> subprocess.CompletedProcess:
    """A new picture like no other indexed, then a scan: one that runs (a file changed) and forms the groups."""
    save(make_photo(24, (640, 480)), photos / "new.jpg", quality=90)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    return call_main("--log-level", "info", "scan", config=settings)


@pytest.fixture
def three_photos(tmp_path):
    photos = tmp_path / "photos"
    paths = [save(make_photo(seed, (640, 480)), photos / f"photo-{seed}.jpg", quality=90) for seed in (21, 22, 23)]
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    assert call_main("scan", config=settings).returncode == 0  # three strangers: no group
    return paths, settings, tmp_path / "state" / "state.db", tmp_path / "reports" / "duplicates.json"


def both_matched_at(three_photos, score: float):
    """The first photo stored as matching the other two at ``score``, those two never compared,
    then a scan that forms the groups: its result, the two's stored score, the groups reported."""
    (anchor, first, second), settings, database, report = three_photos
    as_if_compared(database, [(anchor, first, score), (anchor, second, score)], never=(first, second))
    scanned = scan_after_a_new_picture(settings, anchor.parent)
    assert scanned.returncode == 0, scanned.stderr
    groups = list(json.loads(report.read_text()).values())
    return scanned, stored_score(database, content_of(first), content_of(second)), groups


def test_strangers_a_look_alike_matches_at_the_floor_are_compared_and_not_reported_together(three_photos):
    scanned, score, groups = both_matched_at(three_photos, 0.61)

    hub, first, _second = three_photos[0]
    assert "compared 1 pairs of grouped pictures never compared before" in scanned.stderr
    assert score is not None and score < 0.5  # compared by the real backend: far apart
    assert groups == [sorted([str(hub), str(first)])]  # the first to join stays; the stranger far from it leaves


def test_pictures_tied_strongly_to_their_group_are_not_compared_again_and_stay_together(three_photos):
    scanned, score, groups = both_matched_at(three_photos, 0.85)

    assert "Found 1 duplicate groups with 3 images." in scanned.stdout
    assert "never compared before" not in scanned.stderr
    assert score is None
    assert groups == [sorted(str(path) for path in three_photos[0])]
