"""An upgrade whose verifier only tightens the one that found the stored pairs: the pairs it
verified are scored again, and nothing else is compared."""

from __future__ import annotations

import sqlite3

import pytest

from dupe_scanner import scanning
from dupe_scanner.analysis.features import ANALYSER
from dupe_scanner.backends import embedded
from dupe_scanner.scanning import COMPARISON_KEY
from tests.cli import call_main, write_settings
from tests.photos import make_photo, save
from tests.test_group_completion import content_of, stored_score

OLDER = "verify-older"  # the verifier the stored pairs were found by, in these tests


@pytest.fixture
def scanned_by_an_older_verifier(tmp_path):
    """A photo and its smaller copy, two strangers, indexed and scanned; then the state made
    to look as an older verifier left it: the strangers stored as a verified pair (0.9, what
    a looser check could have said), the photo and a stranger as a rejected one at a score no
    comparison gives (0.3333), and the comparison recorded as that verifier's."""
    photos = tmp_path / "photos"
    photo = save(make_photo(21, (640, 480)), photos / "photo.jpg", quality=90)
    copy = save(make_photo(21, (640, 480)).resize((480, 360)), photos / "copy.jpg", quality=90)
    first, second = (save(make_photo(seed, (640, 480)), photos / f"stranger-{seed}.jpg", quality=90) for seed in (22, 23))
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    assert call_main("scan", config=settings).returncode == 0
    database = tmp_path / "state" / "state.db"
    with sqlite3.connect(database) as connection:
        for one, other, score in ((first, second, 0.9), (photo, first, 0.3333)):
            low, high = sorted([content_of(one), content_of(other)])
            connection.execute("INSERT OR REPLACE INTO pairs (first, second, score) VALUES (?, ?, ?)", (low, high, score))
        connection.execute("UPDATE meta SET value = ? WHERE key = ?", (f"{ANALYSER}+{OLDER}", COMPARISON_KEY))
    return settings, database, {"photo": photo, "copy": copy, "first": first, "second": second}


def score_of(database, paths, one: str, other: str) -> float:
    """The stored score of two of the pictures; -1 when no pair of them is stored."""
    score = stored_score(database, content_of(paths[one]), content_of(paths[other]))
    return -1.0 if score is None else score


@pytest.mark.parametrize("page", [scanning.REJUDGE_PAGE, 1])
def test_after_a_tightening_upgrade_only_the_verified_pairs_are_scored_again(scanned_by_an_older_verifier, monkeypatch, page):
    settings, database, paths = scanned_by_an_older_verifier
    monkeypatch.setattr(embedded, "TIGHTENS", (OLDER,))
    monkeypatch.setattr(scanning, "REJUDGE_PAGE", page)  # one pair a page: read on after each

    scanned = call_main("--log-level", "info", "scan", config=settings)

    assert scanned.returncode == 0, scanned.stderr
    assert "only tightens it: scoring its verified pairs again" in scanned.stderr
    assert "1 of the 2 verified pairs scored again no longer verify" in scanned.stderr
    assert score_of(database, paths, "first", "second") < 0.6  # the looser verdict is gone
    assert score_of(database, paths, "photo", "copy") >= 0.9  # the copy is still one
    assert score_of(database, paths, "photo", "first") == 0.3333  # no picture compared again
    assert "Found 1 duplicate groups with 2 images." in scanned.stdout


def test_after_any_other_upgrade_every_picture_is_compared_again(scanned_by_an_older_verifier, monkeypatch):
    settings, database, paths = scanned_by_an_older_verifier
    monkeypatch.setattr(embedded, "TIGHTENS", ())

    scanned = call_main("--log-level", "info", "scan", config=settings)

    assert scanned.returncode == 0, scanned.stderr
    assert "only tightens" not in scanned.stderr
    assert score_of(database, paths, "first", "second") != 0.9
    assert score_of(database, paths, "photo", "first") != 0.3333  # compared again, or not proposed at all
    assert "Found 1 duplicate groups with 2 images." in scanned.stdout


def test_the_verifiers_this_one_tightens_are_earlier_ones():
    from dupe_scanner.analysis.verify import TIGHTENS, VERIFIER

    assert VERIFIER not in TIGHTENS
    assert all(int(older.rsplit("-", 1)[1]) < int(VERIFIER.rsplit("-", 1)[1]) for older in TIGHTENS)
