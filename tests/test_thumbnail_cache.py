"""Report thumbnails kept by content between runs: decoded once, pruned when no page shows them.

Real image files in temp folders; decodes are counted by the report writer itself and
checked against the cache files on disk (a kept file is never written again).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dupe_scanner.groups import DuplicateGroup, FileEntry
from dupe_scanner.reports import write_reports
from dupe_scanner.reports.thumbnail_cache import COUNT_FILE, FORMAT_VERSION, ThumbnailCache, thumbnails_beside
from dupe_scanner.settings import ReportSettings
from tests.cli import call_main, write_settings
from tests.photos import make_photo, save
from tests.report_helpers import group, make_image

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = ReportSettings(html_max_nodes=2000, thumbnail_size=64)


def photo(path: Path, shade: int) -> FileEntry:
    """A real picture whose entry carries the hash of its bytes, as the indexer's would."""
    make_image(path, size=(120, 90), color=(shade, 90, 160))
    stat = path.stat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return FileEntry(str(path), stat.st_size, stat.st_mtime, 120, 90, "JPEG", digest)


def two_groups(folder: Path) -> list[DuplicateGroup]:
    a, b, c, d, e = (photo(folder / f"{name}.jpg", 40 * index) for index, name in enumerate("abcde"))
    return [group(a, [b, c], [0.95, 0.9]), group(d, [e], [0.8])]


def cached(cache: Path, member: FileEntry) -> Path:
    path = ThumbnailCache(cache, SETTINGS.thumbnail_size).path_of(member.content_hash)
    assert path is not None  # a cache with a folder keeps every content's thumbnail somewhere
    return path


def stamps(paths: list[Path]) -> list[tuple[int, int]]:
    return [(path.stat().st_ino, path.stat().st_mtime_ns) for path in paths]


def test_a_rewrite_after_a_change_decodes_only_the_changed_content(tmp_path):
    groups = two_groups(tmp_path / "photos")
    cache, reports = tmp_path / "state" / ".thumbnails", tmp_path / "reports"
    first = write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert (first.thumbnails_decoded, first.thumbnails_reused) == (5, 0)
    others = [member for g in groups for member in g.members if not member.path.endswith("e.jpg")]
    before = stamps([cached(cache, member) for member in others])

    old_e = groups[1].members[1]
    new_e = photo(Path(old_e.path), shade=250)  # the file was edited: new bytes, new hash
    changed = [groups[0], group(groups[1].members[0], [new_e], [0.8])]
    second = write_reports(changed, reports, SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)

    assert (second.thumbnails_decoded, second.thumbnails_reused) == (1, 4)
    assert reports / "duplicates.html" in second.written
    assert stamps([cached(cache, member) for member in others]) == before  # read, never written again
    assert cached(cache, new_e).is_file()


def test_nothing_is_decoded_when_nothing_changed(tmp_path):
    groups = two_groups(tmp_path / "photos")
    cache = tmp_path / "cache"
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    again = write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert (again.thumbnails_decoded, again.thumbnails_reused) == (0, 0)  # no page rendered at all
    elsewhere = write_reports(groups, tmp_path / "other", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert (elsewhere.thumbnails_decoded, elsewhere.thumbnails_reused) == (0, 5)


def test_thumbnails_of_contents_no_longer_shown_are_pruned(tmp_path):
    groups = two_groups(tmp_path / "photos")
    cache = tmp_path / "cache"
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    gone = groups[1].members  # d.jpg and e.jpg deleted: their group is no more
    assert all(cached(cache, member).is_file() for member in gone)

    write_reports(groups[:1], tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)

    assert not any(cached(cache, member).exists() for member in gone)
    assert all(cached(cache, member).is_file() for member in groups[0].members)
    count_file = cache / f"v{FORMAT_VERSION}-{SETTINGS.thumbnail_size}" / COUNT_FILE
    assert count_file.read_text().strip() == "3"


def test_a_few_stale_thumbnails_wait_for_more_before_a_listing(tmp_path):
    groups = two_groups(tmp_path / "photos")
    cache = tmp_path / "cache"
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    smaller = [groups[0], group(groups[1].members[0], [groups[0].members[0]], [0.8])]  # e.jpg left: 1 of 5
    write_reports(smaller, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert cached(cache, groups[1].members[1]).is_file()  # 5 entries for 4 shown: within the margin


def test_an_unreadable_file_is_not_cached(tmp_path):
    good = photo(tmp_path / "good.jpg", 10)
    broken_path = tmp_path / "broken.jpg"
    broken_path.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    broken = FileEntry(str(broken_path), 24, broken_path.stat().st_mtime, 120, 90, "JPEG", "ab" * 32)
    groups = [group(good, [broken], [0.9])]
    cache = tmp_path / "cache"
    first = write_reports(groups, tmp_path / "one", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert first.thumbnails_decoded == 2
    assert cached(cache, good).is_file() and not cached(cache, broken).exists()
    second = write_reports(groups, tmp_path / "two", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert (second.thumbnails_decoded, second.thumbnails_reused) == (1, 1)  # the broken one is tried again


def test_a_torn_cache_file_is_decoded_again(tmp_path):
    groups = two_groups(tmp_path / "photos")
    cache = tmp_path / "cache"
    write_reports(groups, tmp_path / "one", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    torn = cached(cache, groups[0].members[0])
    torn.write_bytes(torn.read_bytes()[:100])  # as a power cut might leave it
    second = write_reports(groups, tmp_path / "two", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert second.thumbnails_decoded == 1
    assert torn.read_bytes().endswith(b"\xff\xd9")


def test_a_new_thumbnail_size_replaces_the_old_ones(tmp_path):
    groups = two_groups(tmp_path / "photos")
    cache = tmp_path / "cache"
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    bigger = ReportSettings(html_max_nodes=2000, thumbnail_size=96)
    outcome = write_reports(groups, tmp_path / "reports", bigger, 0.6, generated_at=T0, thumbnail_cache=cache)
    assert outcome.thumbnails_decoded == 5
    assert sorted(path.name for path in cache.iterdir()) == [f"v{FORMAT_VERSION}-96"]


RESTARTED = """
import json, sys
from datetime import datetime, timezone
from pathlib import Path
from dupe_scanner.groups import DuplicateGroup, FileEntry, FilePair
from dupe_scanner.reports import write_reports
from dupe_scanner.settings import ReportSettings

spec = json.loads(sys.argv[1])
groups = [
    DuplicateGroup(g["anchor"], tuple(FileEntry(*m) for m in g["members"]), tuple(FilePair(*p) for p in g["pairs"]))
    for g in spec["groups"]
]
outcome = write_reports(
    groups, Path(spec["reports"]), ReportSettings(html_max_nodes=2000, thumbnail_size=64), 0.6,
    generated_at=datetime(2024, 5, 1, tzinfo=timezone.utc), thumbnail_cache=Path(spec["cache"]),
)
print(json.dumps([outcome.thumbnails_decoded, outcome.thumbnails_reused]))
"""


def test_the_cache_survives_a_restart(tmp_path):
    groups = two_groups(tmp_path / "photos")
    cache = tmp_path / "state" / ".thumbnails"

    def in_a_new_process(reports: Path) -> list[int]:
        spec = {
            "reports": str(reports),
            "cache": str(cache),
            "groups": [
                {
                    "anchor": g.anchor,
                    "members": [[m.path, m.size, m.mtime, m.width, m.height, m.format, m.content_hash] for m in g.members],
                    "pairs": [[p.first, p.second, p.score] for p in g.pairs],
                }
                for g in groups
            ],
        }
        done = subprocess.run([sys.executable, "-c", RESTARTED, json.dumps(spec)], capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    assert in_a_new_process(tmp_path / "one") == [5, 0]
    assert in_a_new_process(tmp_path / "two") == [0, 5]


def test_the_cache_sits_beside_the_state():
    assert thumbnails_beside("/var/lib/dupe-scanner/state.db") == Path("/var/lib/dupe-scanner/.thumbnails")
    assert thumbnails_beside(None) is None and thumbnails_beside(":memory:") is None


def test_a_scan_keeps_the_thumbnails_beside_the_state(tmp_path):
    photos = tmp_path / "photos"
    original = save(make_photo(5), photos / "a.jpg", quality=90)
    shutil.copyfile(original, photos / "b.jpg")
    settings = write_settings(tmp_path)  # the state in state/state.db
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    scanned = call_main("scan", config=settings)
    assert scanned.returncode == 0, scanned.stderr
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    kept = tmp_path / "state" / ".thumbnails" / f"v{FORMAT_VERSION}-{ReportSettings().thumbnail_size}" / digest[:2]
    assert [path.name for path in kept.iterdir()] == [f"{digest}.jpg"]  # one content, one thumbnail


def opened_pictures(monkeypatch, folder: Path) -> list[str]:
    """The pictures under ``folder`` the thumbnails are decoded from, one entry per decode."""
    from dupe_scanner.reports import thumbnails

    opened: list[str] = []
    real_open = thumbnails.open_upright

    def counting_open(path, *arguments, **options):
        if Path(path).is_relative_to(folder):
            opened.append(Path(path).name)
        return real_open(path, *arguments, **options)

    monkeypatch.setattr(thumbnails, "open_upright", counting_open)
    return opened


def test_a_first_write_decodes_each_picture_once_for_the_graph_and_the_review_page(tmp_path, monkeypatch):
    groups = two_groups(tmp_path / "photos")
    opened = opened_pictures(monkeypatch, tmp_path / "photos")

    outcome = write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, thumbnail_cache=tmp_path / "cache")

    assert sorted(opened) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    assert (outcome.thumbnails_decoded, outcome.review_thumbnails_decoded) == (5, 5)
    assert all(cached(tmp_path / "cache", member).read_bytes().endswith(b"\xff\xd9") for g in groups for member in g.members)


def test_a_graph_thumbnail_whose_review_thumbnail_is_torn_is_decoded_from_the_picture(tmp_path, monkeypatch):
    groups = two_groups(tmp_path / "photos")
    cache, reports = tmp_path / "cache", tmp_path / "reports"
    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)
    shutil.rmtree(cache)
    (reports / "duplicates.html").unlink()  # so the page is rendered again
    first = groups[0].members[0]
    torn = ThumbnailCache(reports / "thumbnails", 224).kept_file(first.content_hash)
    assert torn is not None
    torn.write_bytes(torn.read_bytes()[:100])  # as a power cut might leave it
    opened = opened_pictures(monkeypatch, tmp_path / "photos")

    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0, thumbnail_cache=cache)

    assert opened == [Path(first.path).name]
    assert cached(cache, first).read_bytes().endswith(b"\xff\xd9")


def test_a_kept_thumbnail_larger_than_one_read_is_read_whole(tmp_path):
    member = FileEntry(str(tmp_path / "big.png"), 1, 0.0, 8000, 6000, "PNG", "d" * 64)
    large = b"\xff\xd8" + bytes(range(256)) * 800 + b"\xff\xd9"  # 200 kB: a big thumbnail size
    stored = ThumbnailCache(tmp_path / "cache", 1024).jpegs([member], lambda paths: [large for _ in paths])
    again = ThumbnailCache(tmp_path / "cache", 1024)
    assert stored == again.jpegs([member], lambda paths: [None for _ in paths]) == [large]
    assert (again.reused, again.decoded) == (1, 0)
