"""Which paths a watch wants: judged on the text of the path, as a walk of a million files needs."""

from pathlib import Path

import pytest

from dupe_scanner.pathfilter import PathFilter

ROOT = Path("/photos")


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("/photos/a.jpg", True),
        ("/photos/trip/2024/b.HEIC", True),
        ("/photos/.hidden.png", True),  # a hidden picture is still a picture
        ("/photos/.jpg", False),  # a name that is all extension has none
        ("/photos/notes.txt", False),
        ("/photos/archive.jpg.", False),
        ("/photos", False),
        ("/photos/", False),
        ("/photosynthesis/a.jpg", False),  # a sibling whose name starts like the root
        ("/elsewhere/a.jpg", False),
        ("/photos/@eaDir/a.jpg", False),  # excluded anywhere below
        ("/photos/x/.thumbnails/y/a.jpg", False),
        ("/photos/x/a.tmp.jpg", True),
    ],
)
def test_a_path_is_wanted_by_its_folder_extension_and_globs(path, wanted):
    path_filter = PathFilter(ROOT, exclude=("**/@eaDir/**", "**/.thumbnails/**"))
    assert path_filter.wants(path) is wanted
    assert path_filter.wants(Path(path)) is wanted


def test_include_globs_narrow_and_a_flat_watch_ignores_subfolders():
    raw_only = PathFilter(ROOT, include=("**/*.dng", "*.nef"))
    assert raw_only.wants("/photos/a/b/c.dng")
    assert raw_only.wants("/photos/c.nef")
    assert not raw_only.wants("/photos/a/c.nef")  # "*" stays within one name
    assert not raw_only.wants("/photos/c.jpg")
    flat = PathFilter(ROOT, recursive=False)
    assert flat.wants("/photos/a.jpg")
    assert not flat.wants("/photos/sub/a.jpg")


def test_the_filesystem_root_can_be_watched():
    assert PathFilter(Path("/")).wants("/a.jpg")
