"""Reconcile compares the disk with the state by stat alone and repairs what events missed."""

import os

from sqlalchemy import Connection

from dupe_scanner.pathfilter import PathFilter
from dupe_scanner.reconcile import diff, reconcile, sift, walk
from dupe_scanner.settings import DEFAULT_EXCLUDES
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import open_state, read_transaction
from dupe_scanner.store.files import FileStat, KnownFile


def known(connection: Connection, path: str) -> KnownFile:
    """The state's row for ``path``, which the test has put there."""
    found = file_store.get_by_path(connection, path)
    assert found is not None, path
    return found


def stat(size, mtime=1):
    return FileStat(size, mtime, 1, 1)


def test_diff_is_new_changed_and_vanished():
    disk = {"a": stat(1), "b": stat(2), "c": stat(3, mtime=9)}
    state = {"b": stat(2), "c": stat(3), "d": stat(4)}
    changes = diff(disk, state)
    assert changes.new == ("a",)
    assert changes.changed == ("c",)
    assert changes.vanished == ("d",)


def test_sift_keeps_the_stats_of_new_and_changed_files_alone():
    """The walk of an unchanged library holds no stat of it: only what ``apply`` writes."""
    disk = iter([("a", stat(1)), ("b", stat(2)), ("c", stat(3, mtime=9))])
    known = {"b": (2, 1), "c": (3, 1), "d": (4, 1)}
    found, changes = sift(disk, known)
    assert found == {"a": stat(1), "c": stat(3, mtime=9)}
    assert (changes.new, changes.changed, changes.vanished) == (("a",), ("c",), ("d",))


def reconciled_pair(tmp_path, second: str):
    """A folder of two files, a.jpg and ``second``, walked once into a new state."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"1")
    (photos / second).write_bytes(b"2")
    engine = open_state(tmp_path / "state.db")
    reconcile(engine, PathFilter(photos))
    return photos, engine


def test_reconcile_queues_a_file_whose_size_or_mtime_changed(tmp_path):
    photos, engine = reconciled_pair(tmp_path, "b.jpg")
    (photos / "b.jpg").write_bytes(b"longer")
    changes = reconcile(engine, PathFilter(photos))
    assert (changes.new, changes.changed, changes.vanished) == ((), (str(photos / "b.jpg"),), ())
    with read_transaction(engine) as connection:
        assert known(connection, str(photos / "b.jpg")).stat.size == 6


def test_walk_finds_images_and_skips_clutter_and_symlinks(tmp_path):
    (tmp_path / "sub" / ".thumbnails").mkdir(parents=True)
    (tmp_path / "@eaDir").mkdir()
    for name in ["a.jpg", "sub/b.PNG", "sub/.thumbnails/t.jpg", "@eaDir/x.jpg", "notes.txt", "c.jpg.part", "._d.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    os.symlink(tmp_path / "a.jpg", tmp_path / "link.jpg")
    found = walk(PathFilter(tmp_path, exclude=DEFAULT_EXCLUDES)).listing
    assert sorted(os.path.relpath(p, tmp_path) for p in found) == ["a.jpg", "sub/b.PNG"]


def test_not_recursive_stays_in_the_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub" / "b.jpg").write_bytes(b"x")
    found = walk(PathFilter(tmp_path, recursive=False)).listing
    assert list(found) == [str(tmp_path / "a.jpg")]


def test_reconcile_queues_new_files_and_marks_deleted_ones_gone(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"1")
    (photos / "b.jpg").write_bytes(b"2")
    engine = open_state(tmp_path / "state.db")
    first = reconcile(engine, PathFilter(photos))
    assert len(first.new) == 2
    (photos / "b.jpg").unlink()
    (photos / "c.jpg").write_bytes(b"3")
    second = reconcile(engine, PathFilter(photos))
    assert second.new == (str(photos / "c.jpg"),)
    assert second.vanished == (str(photos / "b.jpg"),)
    with read_transaction(engine) as connection:
        assert known(connection, str(photos / "b.jpg")).state == "gone"
    assert not reconcile(engine, PathFilter(photos))


def test_an_unreadable_folder_does_not_make_its_files_vanish(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    (photos / "locked").mkdir(parents=True)
    (photos / "locked" / "a.jpg").write_bytes(b"1")
    engine = open_state(tmp_path / "state.db")
    reconcile(engine, PathFilter(photos))
    real_scandir = os.scandir

    def scandir_refusing_locked(folder):
        # Tests run as root, which chmod cannot lock out; refuse the way the kernel would.
        if str(folder).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(folder))
        return real_scandir(folder)

    monkeypatch.setattr(os, "scandir", scandir_refusing_locked)
    changes = reconcile(engine, PathFilter(photos))
    assert changes.vanished == ()
    with read_transaction(engine) as connection:
        assert known(connection, str(photos / "locked" / "a.jpg")).state == "pending"


def test_a_walk_that_is_not_recursive_leaves_subfolders_alone(tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(b"1")
    (photos / "sub" / "b.jpg").write_bytes(b"2")
    engine = open_state(tmp_path / "state.db")
    reconcile(engine, PathFilter(photos))
    changes = reconcile(engine, PathFilter(photos, recursive=False))
    assert not changes
    with read_transaction(engine) as connection:
        assert known(connection, str(photos / "sub" / "b.jpg")).state == "pending"


def test_files_recorded_while_a_walk_runs_are_not_marked_gone(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    engine = open_state(tmp_path / "state.db")
    from dupe_scanner.store.database import write_transaction

    # The walk began at t=100; an event recorded a new file at t=150, after the walk had
    # passed its folder. The walk's listing does not have it, and must not drop it.
    with write_transaction(engine) as connection:
        file_store.mark_seen(connection, str(photos / "new.jpg"), FileStat(1, 1, 1, 1), now=150.0)
    from dupe_scanner.reconcile import Changes, apply

    apply(engine, {}, Changes(vanished=(str(photos / "new.jpg"),)), [], now=200.0, untouched_since=100.0)
    with read_transaction(engine) as connection:
        assert known(connection, str(photos / "new.jpg")).state == "pending"


def test_an_excluded_file_leaves_the_state_only_when_asked(tmp_path):
    photos, engine = reconciled_pair(tmp_path, "raw.jpg")
    reconcile(engine, PathFilter(photos, exclude=("raw.jpg",)))
    with read_transaction(engine) as connection:
        assert known(connection, str(photos / "raw.jpg")).state == "pending"
    reconcile(engine, PathFilter(photos, exclude=("raw.jpg",)), drop_unwanted=True)
    with read_transaction(engine) as connection:
        assert known(connection, str(photos / "raw.jpg")).state == "gone"
