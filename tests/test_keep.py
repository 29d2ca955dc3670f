"""The keep rules: decisions first, then preferred folders and formats, pixels, size, age; reasons in words."""

from pathlib import Path

from dupe_scanner.decisions import DecidedContent, Decision, Decisions
from dupe_scanner.groups import FileEntry
from dupe_scanner.keep import choose_keep, find_companions, review_group
from dupe_scanner.settings import KeepSettings

NO_RULES = KeepSettings()


def entry(path: str, width: int = 100, size: int = 1000, mtime: float = 0.0, fmt: str = "JPEG", digest: str = "") -> FileEntry:
    return FileEntry(path, size, mtime, width, width * 3 // 4, fmt, digest or "h-" + path)


def test_most_pixels_then_largest_then_oldest_each_with_its_reason():
    assert choose_keep([entry("/a", width=2000), entry("/b", width=4000)], NO_RULES).reason == (
        "most pixels: 4000x3000 against 2000x1500"
    )
    by_size = choose_keep([entry("/a", size=10), entry("/b", size=20)], NO_RULES)
    assert (by_size.path, by_size.reason) == ("/b", "largest file: 20 bytes against 10")
    by_age = choose_keep([entry("/a", mtime=86400 * 2), entry("/b", mtime=0)], NO_RULES)
    assert by_age.path == "/b" and by_age.reason.startswith("oldest: modified 1970-01-01")


def test_a_preferred_folder_wins_over_pixels_and_its_files_are_never_removed():
    rules = KeepSettings(preferred_folders=(Path("/ref"),))
    members = [entry("/photos/big.jpg", width=4000), entry("/ref/small.jpg", width=100), entry("/ref/sub/x.jpg", width=50)]
    review = review_group(members, rules)
    assert review.keep.path == "/ref/small.jpg"
    assert review.keep.reason.startswith("most pixels")  # both ref files are preferred; pixels tell them apart
    assert [m.path for m in review.removable(members)] == ["/photos/big.jpg"]
    alone = choose_keep([entry("/photos/big.jpg", width=4000), entry("/ref/small.jpg", width=100)], rules)
    assert (alone.path, alone.reason) == ("/ref/small.jpg", "in a preferred folder (/ref)")


def test_a_preferred_format_wins_over_pixels():
    rules = KeepSettings(preferred_formats=("PNG", "JPEG"))
    choice = choose_keep([entry("/a.jpg", width=4000), entry("/b.png", width=100, fmt="PNG")], rules)
    assert (choice.path, choice.reason) == ("/b.png", "preferred format: PNG against JPEG")


def test_a_keep_decision_wins_over_every_rule_and_makes_the_group_decided():
    members = [entry("/ref/big.jpg", width=4000), entry("/photos/small.jpg", width=100, digest="S")]
    decisions = Decisions((Decision(7, "keep", 0.0, "test", (DecidedContent("S", "/elsewhere/small.jpg"),)),))
    review = review_group(members, KeepSettings(preferred_folders=(Path("/ref"),)), decisions)
    assert (review.keep.path, review.keep.reason) == ("/photos/small.jpg", "you decided to keep it (decision 7)")
    assert review.decided and review.decisions == decisions.all
    assert review.removable(members) == []  # /ref is preferred: never removed either
    assert not review_group(members, NO_RULES).decided


def test_among_identical_copies_of_a_kept_content_the_decided_path_is_kept():
    members = [entry("/a/x.jpg", digest="X"), entry("/b/x.jpg", digest="X"), entry("/c/y.jpg", width=4000)]
    decisions = Decisions((Decision(1, "keep", 0.0, "test", (DecidedContent("X", "/b/x.jpg"),)),))
    review = review_group(members, NO_RULES, decisions)
    assert review.keep.path == "/b/x.jpg"
    assert sorted(m.path for m in review.removable(members)) == ["/a/x.jpg", "/c/y.jpg"]


def test_raw_and_jpeg_of_one_shot_are_companions_never_suggested_for_removal():
    members = [
        entry("/p/IMG_1.CR2", fmt="TIFF"),
        entry("/p/IMG_1.JPG", width=4000),
        entry("/p/other/IMG_1.jpg"),
        entry("/p/IMG_1-edit.jpg"),
    ]
    assert find_companions(members) == (("/p/IMG_1.CR2", "/p/IMG_1.JPG"),)
    review = review_group(members, NO_RULES)
    assert review.companions == (("/p/IMG_1.CR2", "/p/IMG_1.JPG"),)
    assert sorted(m.path for m in review.removable(members)) == ["/p/IMG_1-edit.jpg", "/p/other/IMG_1.jpg"]
    raw_first = choose_keep(members[:2], KeepSettings(preferred_formats=("CR2", "JPEG")))
    assert (raw_first.path, raw_first.reason) == ("/p/IMG_1.CR2", "preferred format: CR2 against JPEG")
