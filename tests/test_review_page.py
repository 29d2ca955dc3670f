"""review.html without a browser: the kind of change, the page's data, its thumbnail files, its markup.

``change_kinds`` and ``review_document`` are pure and tested with entries built by hand;
the page itself is written through the real ``write_reports`` from real image files.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from dupe_scanner.groups import DuplicateGroup, FileEntry, FilePair
from dupe_scanner.reports import review_page, write_reports
from dupe_scanner.reports.change_kind import KINDS, change_kinds, kinds_mask
from dupe_scanner.reports.review_data import review_document, split_path
from dupe_scanner.reports.thumbnail_cache import ThumbnailCache
from tests.report_helpers import CANARY, SETTINGS, T0, T1, make_image


def file(path: str, width=400, height=300, fmt="JPEG", content="") -> FileEntry:
    return FileEntry(path, 1000, 1_700_000_000.0, width, height, fmt, content or hashlib.sha256(path.encode()).hexdigest())


ANCHOR = file("/photos/a.jpg", 4000, 3000, content="a" * 64)


# --- the kind of change ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "score", "kinds"),
    [
        (file("/photos/copy.jpg", 4000, 3000, content="a" * 64), 1.0, ("identical",)),
        (file("/photos/small.jpg", 2000, 1500), 0.97, ("resized",)),
        (file("/photos/small.png", 2000, 1500, "PNG"), 0.97, ("resized", "re-encoded")),
        (file("/photos/saved.jpg", 4000, 3000), 0.95, ("re-encoded",)),
        (file("/photos/turned.jpg", 3000, 4000), 0.93, ("rotated",)),
        (file("/photos/turned-small.jpg", 1500, 2000), 0.93, ("rotated", "resized")),
        (file("/photos/captioned.jpg", 4000, 3000), 0.7, ("similar",)),  # text? colour? not recorded
        (file("/photos/captioned-small.jpg", 2000, 1500), 0.7, ("resized", "similar")),
        (file("/photos/cropped.jpg", 3000, 3000), 0.8, ("similar",)),
        (file("/photos/unscored.jpg", 4000, 3000), None, ("similar",)),
    ],
)
def test_the_kind_of_change_is_only_what_the_stored_facts_tell(member, score, kinds):
    assert change_kinds(ANCHOR, member, score) == kinds


def test_a_square_picture_is_never_called_rotated():
    square = file("/photos/sq.jpg", 1000, 1000)
    assert change_kinds(square, file("/photos/sq-small.jpg", 500, 500), 0.95) == ("resized",)


def test_kinds_are_bits_in_the_filters_order():
    assert kinds_mask(("identical",)) == 1 and kinds_mask(("resized", "similar")) == 4 + 16
    assert KINDS[4] == "similar"


# --- paths and the page's data --------------------------------------------------------------


def test_a_path_is_shown_below_the_innermost_watched_folder():
    assert split_path("/photos/2024/trip/a.jpg", ["/photos", "/photos/2024"]) == ("/photos/2024", "trip/a.jpg")
    assert split_path("/photosets/a.jpg", ["/photos"]) == ("/photosets", "a.jpg")  # a prefix is not a parent
    assert split_path("/elsewhere/b.jpg", []) == ("/elsewhere", "b.jpg")
    assert split_path("/a.jpg", ["/"]) == ("/", "a.jpg") and split_path("/a.jpg", []) == ("/", "a.jpg")
    assert split_path("/photos/a.jpg", ["/photos/"]) == ("/photos", "a.jpg")


def test_the_document_lists_every_group_compactly_with_scores_kinds_and_keep():
    small = file("/photos/2024/small.jpg", 2000, 1500)
    copy = FileEntry("/backup/small.jpg", 1000, 1_700_000_000.0, 2000, 1500, "JPEG", small.content_hash)
    weird = file("/photos/new\nline\u202egpj.jpg", 4000, 3000)
    members = (ANCHOR, small, copy, weird)
    pairs = (
        FilePair(ANCHOR.path, small.path, 0.97),
        FilePair("/backup/small.jpg", small.path, 1.0),  # a copy is paired with its content's first path only
        FilePair(ANCHOR.path, weird.path, 0.7),
    )
    group = DuplicateGroup(anchor=ANCHOR.path, members=tuple(sorted(members, key=lambda m: m.path)), pairs=pairs)
    document = review_document([group], ["duplicates.html"], [0], ["/photos"], "thumbnails/v1-224/", lambda m: None)
    assert document["folders"] == ["/photos", "/backup"] and document["formats"] == ["JPEG"]
    [[page, decided, keep, anchor, reason, rows]] = document["groups"]
    assert (page, decided, anchor) == (1, 0, 0)
    assert [row[0] for row in rows] == ["a.jpg", "small.jpg", "2024/small.jpg", "new\nline\u202egpj.jpg"]  # exact names
    assert rows[keep][0] == "a.jpg" and reason
    assert [row[7] for row in rows] == [-1, 9700, 9700, 7000]  # the copy scores what its content scores
    assert [row[8] for row in rows] == [0, kinds_mask(("resized",)), kinds_mask(("resized",)), kinds_mask(("similar",))]
    assert rows[3][12] == "new\\nline\\u202egpj.jpg" and all(len(row) == 12 for row in rows[:3])  # shown as visible()
    assert all(row[10] == 0 for row in rows)  # no thumbnail made


def test_a_group_past_the_graph_pages_has_no_graph_link():
    group = DuplicateGroup(anchor=ANCHOR.path, members=(ANCHOR, file("/photos/b.jpg")), pairs=())
    document = review_document([group], [], [-1], [], "t/", lambda m: None)
    assert document["groups"][0][0] == 0


# --- the page and its thumbnail files ---------------------------------------------------------


def page_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', text, re.S)
    assert found is not None, "no review data in the page"
    return json.loads(found.group(1))


def test_thumbnails_are_files_by_content_readable_by_others_and_made_once(tmp_path, groups):
    reports = tmp_path / "reports"
    first = write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)
    files = sorted((reports / "thumbnails").rglob("*.jpg"))
    shown = {m.content_hash for g in groups for m in g.members} - {"hash-broken"}  # unreadable: no thumbnail
    assert first.review_thumbnails_decoded == len(shown) + 1 and len(files) == len(shown)
    assert all(path.stat().st_mode & 0o777 == 0o644 for path in files)
    data = page_data(reports / "review.html")
    urls = [row[10] for g in data["groups"] for row in g[5]]
    assert 0 in urls and all((reports / url).is_file() for url in urls if url not in (0, 1))
    second = write_reports(groups, reports, SETTINGS, 0.6, generated_at=T1)
    assert second.review_thumbnails_decoded == 1  # only the unreadable one is tried again
    assert reports / "review.html" in second.unchanged  # only the time would differ


def test_a_hex_content_hash_needs_no_thumbnail_path_in_the_data(tmp_path):
    a, b = (make_image(tmp_path / "photos" / f"{name}.jpg", color=(i * 90, 20, 20)) for i, name in enumerate("ab"))
    entries = [FileEntry(str(p), p.stat().st_size, p.stat().st_mtime, 400, 300, "JPEG", hashlib.sha256(p.read_bytes()).hexdigest()) for p in (a, b)]
    group = DuplicateGroup(anchor=str(a), members=tuple(entries), pairs=(FilePair(str(a), str(b), 0.8),))
    write_reports([group], tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, watched_folders=[tmp_path / "photos"])
    data = page_data(tmp_path / "reports" / "review.html")
    assert data["thumbs"] == "thumbnails/v1-224/" and [row[10] for row in data["groups"][0][5]] == [1, 1]
    for entry in entries:
        digest = entry.content_hash
        assert (tmp_path / "reports" / data["thumbs"] / digest[:2] / f"{digest}.jpg").is_file()


def test_ensure_files_decodes_each_missing_content_once(tmp_path):
    cache = ThumbnailCache(tmp_path / "cache", 32, mode=0o644)
    kept = cache.path_of("c" * 64)
    assert kept is not None
    thumbnail = str(kept)
    a = make_image(tmp_path / "a.jpg")
    members = [FileEntry(str(a), 1, 0.0, 400, 300, "JPEG", "c" * 64), FileEntry(str(a) + "-copy", 1, 0.0, 400, 300, "JPEG", "c" * 64)]
    calls = []

    def decode(paths):
        calls.append(list(paths))
        return [b"\xff\xd8" + b"x" * 20 + b"\xff\xd9" for _ in paths]

    assert cache.ensure_files(members, decode) == [thumbnail] * 2 and len(calls) == len(calls[0]) == 1
    assert cache.ensure_files(members, decode) == [thumbnail] * 2 and len(calls) == 1
    assert kept.stat().st_mode & 0o777 == 0o644
    listing = cache.listing()
    assert listing == {"c" * 64 + ".jpg"}
    assert cache.ensure_files(members, decode, listing) == [thumbnail] * 2 and len(calls) == 1
    kept.unlink()  # gone since the listing: decoded again only without one
    assert cache.ensure_files(members, decode) == [thumbnail] * 2 and len(calls) == 2


def test_the_page_is_standalone_and_names_reach_it_only_as_json(tmp_path, groups, photos):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    text = (tmp_path / "reports" / "review.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # nothing from a network
    assert "<img" not in text and "onerror" not in text.replace("onerror=", "")  # no name as markup
    assert "innerHTML" not in review_page.review_template.SCRIPT
    data = text.split('id="review-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data
    names = [row[0] for g in page_data(tmp_path / "reports" / "review.html")["groups"] for row in g[5]]
    assert CANARY in names  # intact, for the export
