"""bench.regroup: groups formed again from stored pairs are scored as the benches score reports."""

from __future__ import annotations

from bench.regroup import reported_pairs
from dupe_scanner.groups import DuplicateGroup, FileEntry, FilePair


def _entry(path: str) -> FileEntry:
    return FileEntry(path, 1000, 0.0, 100, 100, "JPEG", "h-" + path)


def test_every_two_members_are_a_reported_pair_named_under_the_library(tmp_path):
    names = ["a.jpg", "sub/b.jpg", "c.png"]
    paths = [str(tmp_path / name) for name in names]
    group = DuplicateGroup(paths[0], tuple(_entry(p) for p in paths), (FilePair(paths[0], paths[1], 0.93),))

    scored = reported_pairs([group], tmp_path, threshold=0.6)

    assert scored == {("a.jpg", "sub/b.jpg"): 0.93, ("a.jpg", "c.png"): 0.6, ("c.png", "sub/b.jpg"): 0.6}
