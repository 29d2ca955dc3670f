"""Watching folders: real watchdog observers on real temp folders, events turned into hints."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from dupe_scanner.pathfilter import PathFilter
from dupe_scanner.service import watching
from dupe_scanner.service.watching import (
    CHANGED,
    DELETED,
    MISSING,
    MOVED,
    NATIVE,
    POLLING,
    RESCAN,
    UNWATCHED,
    Hint,
    LimitAwareInotifyFD,
    Watcher,
    hints_for_event,
    path_filter_for,
)
from dupe_scanner.settings import WatchSettings
from tests.service_helpers import wait_for

ROOT = Path("/photos")


@pytest.fixture
def root_filter():
    return path_filter_for(WatchSettings(path=ROOT))


# The pure part: one event, its hints --------------------------------------------------


@pytest.mark.parametrize("event_class", [FileCreatedEvent, FileModifiedEvent, FileClosedEvent])
def test_writes_are_changes(root_filter, event_class):
    assert hints_for_event(event_class("/photos/a/b.jpg"), root_filter) == [
        Hint(CHANGED, ROOT, Path("/photos/a/b.jpg"))
    ]


@pytest.mark.parametrize("event_class", [FileOpenedEvent, FileClosedNoWriteEvent, DirModifiedEvent, DirCreatedEvent])
def test_reads_and_folder_noise_give_nothing(root_filter, event_class):
    assert hints_for_event(event_class("/photos/a/b.jpg"), root_filter) == []


@pytest.mark.parametrize(
    "path",
    ["/photos/notes.txt", "/photos/.thumbnails/a.jpg", "/photos/x/@eaDir/a.jpg", "/photos/a.jpg.part",
     "/photos/._a.jpg", "/elsewhere/a.jpg"],
)
def test_paths_the_filter_does_not_want_give_nothing(root_filter, path):
    assert hints_for_event(FileCreatedEvent(path), root_filter) == []
    assert hints_for_event(FileDeletedEvent(path), root_filter) == []


def test_delete(root_filter):
    assert hints_for_event(FileDeletedEvent("/photos/a.jpg"), root_filter) == [Hint(DELETED, ROOT, Path("/photos/a.jpg"))]


def test_moves(root_filter):
    a, b = "/photos/a.jpg", "/photos/sub/b.jpg"
    assert hints_for_event(FileMovedEvent(a, b), root_filter) == [Hint(MOVED, ROOT, Path(a), Path(b))]
    # A finished download: the partial name is excluded, the final one is new.
    assert hints_for_event(FileMovedEvent("/photos/a.jpg.part", a), root_filter) == [Hint(CHANGED, ROOT, Path(a))]
    # Moved into the clutter: gone from view.
    assert hints_for_event(FileMovedEvent(a, "/photos/.thumbnails/a.jpg"), root_filter) == [Hint(DELETED, ROOT, Path(a))]
    assert hints_for_event(FileMovedEvent("/photos/a.txt", "/photos/b.txt"), root_filter) == []


def test_folder_deletes_and_moves(root_filter):
    assert hints_for_event(DirDeletedEvent("/photos/2020"), root_filter) == [
        Hint(DELETED, ROOT, Path("/photos/2020"), is_directory=True)
    ]
    assert hints_for_event(DirMovedEvent("/photos/2020", "/photos/old/2020"), root_filter) == [
        Hint(MOVED, ROOT, Path("/photos/2020"), Path("/photos/old/2020"), is_directory=True)
    ]
    assert hints_for_event(DirMovedEvent("/photos/2020", "/photos/.Trash-1000/2020"), root_filter) == [
        Hint(DELETED, ROOT, Path("/photos/2020"), is_directory=True)
    ]
    # Out of an excluded folder: its files arrive as file events of their own.
    assert hints_for_event(DirMovedEvent("/photos/.stversions/x", "/photos/x"), root_filter) == []
    # The watched folder itself is the health check's business.
    assert hints_for_event(DirDeletedEvent("/photos"), root_filter) == []


def test_non_recursive_watch_ignores_subfolders():
    path_filter = path_filter_for(WatchSettings(path=ROOT, recursive=False))
    assert hints_for_event(FileCreatedEvent("/photos/a.jpg"), path_filter)
    assert hints_for_event(FileCreatedEvent("/photos/sub/a.jpg"), path_filter) == []


def test_include_globs_narrow_the_watch():
    path_filter = path_filter_for(WatchSettings(path=ROOT, include=("**/*.png",)))
    assert hints_for_event(FileCreatedEvent("/photos/a.png"), path_filter)
    assert hints_for_event(FileCreatedEvent("/photos/a.jpg"), path_filter) == []


def test_handler_survives_a_failing_sink(caplog):
    def sink(_hint):
        raise RuntimeError("boom")

    handler = watching.HintHandler(PathFilter(ROOT), sink)
    with caplog.at_level(logging.ERROR):
        handler.dispatch(FileCreatedEvent("/photos/a.jpg"))
    assert "cannot handle" in caplog.text


# Real observers ---------------------------------------------------------------------------


class Hints:
    """A thread-safe sink that remembers every hint."""

    def __init__(self):
        self.items: list[Hint] = []
        self.lock = threading.Lock()

    def __call__(self, hint: Hint) -> None:
        with self.lock:
            self.items.append(hint)

    def of(self, kind: str, path: Path | None = None) -> list[Hint]:
        with self.lock:
            return [h for h in self.items if h.kind == kind and (path is None or h.path == path)]

    def wait(self, kind: str, path: Path | None = None, timeout: float = 10) -> Hint:
        return wait_for(lambda: self.of(kind, path), timeout, what=f"{kind} hint for {path}")[-1]

    def clear(self):
        with self.lock:
            self.items.clear()


@pytest.fixture
def hints():
    return Hints()


@pytest.fixture
def watcher(hints):
    created = Watcher(hints, mountinfo=lambda: "")
    yield created
    created.stop()


def _write(path: Path, data: bytes = b"\xff\xd8 jpeg-ish") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_inotify_sees_add_modify_rename_move_delete(tmp_path, watcher, hints):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    changes = watcher.apply([WatchSettings(path=photos)])
    assert [w.path for w in changes.added] == [photos]
    assert watcher.status()[0].mode == NATIVE

    a = _write(photos / "a.jpg")
    hints.wait(CHANGED, a)
    with open(a, "ab") as handle:
        handle.write(b"more")
    b = photos / "b.jpg"
    a.rename(b)
    assert hints.wait(MOVED, a).destination == b
    c = photos / "sub" / "c.jpg"
    b.rename(c)
    assert hints.wait(MOVED, b).destination == c
    c.unlink()
    hints.wait(DELETED, c)
    _write(photos / ".thumbnails" / "t.jpg")
    _write(photos / "notes.txt", b"text")

    # A folder moved out of the watched tree: only the folder's deletion is seen.
    _write(photos / "2020" / "x.jpg")
    hints.wait(CHANGED, photos / "2020" / "x.jpg")
    (photos / "2020").rename(outside / "2020")
    assert hints.wait(DELETED, photos / "2020").is_directory
    # A folder moved in from outside: its files show up as changes.
    _write(outside / "2021" / "y.jpg")
    (outside / "2021").rename(photos / "2021")
    hints.wait(CHANGED, photos / "2021" / "y.jpg")
    # A folder renamed inside: the folder and its files move.
    (photos / "2021").rename(photos / "2022")
    assert hints.wait(MOVED, photos / "2021").is_directory
    assert hints.wait(MOVED, photos / "2021" / "y.jpg").destination == photos / "2022" / "y.jpg"

    assert not [h for h in hints.items if ".thumbnails" in str(h.path) or h.path.suffix == ".txt"]


def test_a_name_that_is_not_utf8_is_seen_like_any_other(tmp_path, watcher, hints):
    photos = tmp_path / "photos"
    photos.mkdir()
    watcher.apply([WatchSettings(path=photos)])
    latin1 = Path(os.fsdecode(os.fsencode(photos) + b"/caf\xe9.jpg"))  # bytes an old camera wrote
    _write(latin1)
    hints.wait(CHANGED, latin1)
    renamed = Path(os.fsdecode(os.fsencode(photos) + b"/d\xe9j\xe0-vu.jpg"))
    latin1.rename(renamed)
    assert hints.wait(MOVED, latin1).destination == renamed


def test_polling_when_asked(tmp_path, watcher, hints, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    with caplog.at_level(logging.INFO, logger="dupe_scanner.service.watching"):
        watcher.apply([WatchSettings(path=photos, polling="always", poll_interval=0.2)])
    assert watcher.wait_started(5)
    status = watcher.status()[0]
    assert status.mode == POLLING and "polling = true" in status.reason
    assert "by polling every 0.2s" in caplog.text
    a = _write(photos / "deep" / "a.png")
    hints.wait(CHANGED, a)
    a.rename(photos / "b.png")
    hints.wait(MOVED, a)
    (photos / "b.png").unlink()
    hints.wait(DELETED, photos / "b.png")


def test_network_filesystems_are_polled(tmp_path, hints, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    mountinfo = f"1 0 0:1 / / rw - ext4 /dev/root rw\n2 1 0:2 / {photos} rw - nfs4 nas:/photos rw\n"
    watcher = Watcher(hints, mountinfo=lambda: mountinfo)
    try:
        with caplog.at_level(logging.INFO, logger="dupe_scanner.service.watching"):
            watcher.apply([WatchSettings(path=photos, poll_interval=0.2)])
        assert watcher.wait_started(5)
        status = watcher.status()[0]
        assert status.mode == POLLING and "nfs4 (nas:/photos)" in status.reason
        assert len([r for r in caplog.records if "polling" in r.message]) == 1
        hints.wait(CHANGED, _write(photos / "a.jpg"))
    finally:
        watcher.stop()


def test_polling_never_uses_inotify_even_on_a_share(tmp_path, hints):
    photos = tmp_path / "photos"
    photos.mkdir()
    mountinfo = f"1 0 0:1 / / rw - ext4 /dev/root rw\n2 1 0:2 / {photos} rw - cifs //h/s rw\n"
    watcher = Watcher(hints, mountinfo=lambda: mountinfo)
    try:
        watcher.apply([WatchSettings(path=photos, polling="never")])
        assert watcher.status()[0].mode == NATIVE
    finally:
        watcher.stop()


class LimitedFD(LimitAwareInotifyFD):
    """An inotify instance that runs out of watches for folders named ``deep*``."""

    refuse = "deep"

    def _add_callback(self, path, mask, callback, id_):
        if os.path.basename(path).decode().startswith(self.refuse):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return super()._add_callback(path, mask, callback, id_)


def test_watch_limit_at_start_falls_back_to_polling_with_one_line(tmp_path, hints, caplog):
    photos = tmp_path / "photos"
    (photos / "a" / "deep1").mkdir(parents=True)
    watcher = Watcher(hints, mountinfo=lambda: "", inotify_fd_factory=LimitedFD)
    try:
        with caplog.at_level(logging.INFO, logger="dupe_scanner.service.watching"):
            watcher.apply([WatchSettings(path=photos, poll_interval=0.2)])
        assert watcher.wait_started(5)
        status = watcher.status()[0]
        assert status.mode == POLLING and "inotify watch limit reached" in status.reason
        assert len([r for r in caplog.records if "limit" in r.message]) == 1
        hints.wait(CHANGED, _write(photos / "a" / "deep1" / "x.jpg"))
    finally:
        watcher.stop()


def test_watch_limit_for_the_folder_itself(tmp_path, hints):
    photos = tmp_path / "deep-photos"
    photos.mkdir()
    watcher = Watcher(hints, mountinfo=lambda: "", inotify_fd_factory=LimitedFD)
    try:
        watcher.apply([WatchSettings(path=photos, poll_interval=0.2)])
        assert watcher.status()[0].mode == POLLING
    finally:
        watcher.stop()


def test_watch_limit_for_a_new_subfolder_switches_to_polling_and_rescans(tmp_path, hints):
    photos = tmp_path / "photos"
    photos.mkdir()
    watcher = Watcher(hints, mountinfo=lambda: "", inotify_fd_factory=LimitedFD)
    try:
        watcher.apply([WatchSettings(path=photos, poll_interval=0.2)])
        assert watcher.status()[0].mode == NATIVE
        (photos / "deep2").mkdir()
        wait_for(lambda: getattr(watcher._folders[photos].observer, "limit_error", None), what="the limit to be noticed")
        health = watcher.check()
        assert health.healthy
        assert watcher.status()[0].mode == POLLING
        assert watcher.wait_started(5)
        hints.wait(RESCAN, photos)
        hints.wait(CHANGED, _write(photos / "deep2" / "z.jpg"))
    finally:
        watcher.stop()


def test_watch_limit_with_polling_never_leaves_it_to_reconcile(tmp_path, hints, caplog):
    photos = tmp_path / "deep"
    photos.mkdir()
    watcher = Watcher(hints, mountinfo=lambda: "", inotify_fd_factory=LimitedFD)
    try:
        with caplog.at_level(logging.ERROR, logger="dupe_scanner.service.watching"):
            watcher.apply([WatchSettings(path=photos, polling="never")])
        assert watcher.status()[0].mode == UNWATCHED
        assert "reconcile" in caplog.text
        assert watcher.check().healthy
    finally:
        watcher.stop()


def test_instance_limit_falls_back_too(tmp_path, hints):
    def no_instances(_on_overflow):
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    photos = tmp_path / "photos"
    photos.mkdir()
    watcher = Watcher(hints, mountinfo=lambda: "", inotify_fd_factory=no_instances)
    try:
        watcher.apply([WatchSettings(path=photos, poll_interval=0.2)])
        status = watcher.status()[0]
        assert status.mode == POLLING and "instance limit" in status.reason
    finally:
        watcher.stop()


def test_queue_overflow_asks_for_a_rescan(tmp_path, watcher, hints):
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, WatchDescriptor

    photos = tmp_path / "photos"
    photos.mkdir()
    watcher.apply([WatchSettings(path=photos)])
    inotify_fd = watcher._folders[photos].observer._inotify_fd
    inotify_fd.handle_event(InotifyEvent(WatchDescriptor(-1), InotifyConstants.IN_Q_OVERFLOW, 0, b""))
    hints.wait(RESCAN, photos)
    assert watcher.check().healthy
    # Still watching afterwards.
    hints.wait(CHANGED, _write(photos / "after.jpg"))


def test_dead_watch_threads_are_restarted(tmp_path, watcher, hints, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    watcher.apply([WatchSettings(path=photos)])
    old = watcher._folders[photos].observer
    for emitter in list(old.emitters):  # as if the emitter thread had crashed
        emitter.stop()
        emitter.join(5)
    with caplog.at_level(logging.WARNING, logger="dupe_scanner.service.watching"):
        health = watcher.check()
    assert health.restarted == [photos] and health.healthy
    assert "restarting" in caplog.text
    hints.wait(RESCAN, photos)
    new = watcher._folders[photos].observer
    assert new is not old and new.is_alive() and not old.is_alive()
    hints.wait(CHANGED, _write(photos / "after-restart.jpg"))


def test_a_dead_dispatcher_thread_is_noticed(tmp_path, watcher, hints):
    photos = tmp_path / "photos"
    photos.mkdir()
    watcher.apply([WatchSettings(path=photos)])
    old = watcher._folders[photos].observer
    old.stop()
    old.join(5)
    assert watcher.check().restarted == [photos]
    hints.wait(CHANGED, _write(photos / "again.jpg"))


def test_a_missing_folder_is_watched_once_it_exists(tmp_path, watcher, hints):
    photos = tmp_path / "not-yet"
    watcher.apply([WatchSettings(path=photos)])
    assert watcher.status()[0].mode == MISSING
    assert watcher.check().healthy
    photos.mkdir()
    watcher.check()
    assert watcher.status()[0].mode == NATIVE
    hints.wait(RESCAN, photos)
    hints.wait(CHANGED, _write(photos / "a.jpg"))


def test_a_folder_deleted_while_watched(tmp_path, watcher, hints):
    photos = tmp_path / "photos"
    photos.mkdir()
    watcher.apply([WatchSettings(path=photos)])
    shutil.rmtree(photos)
    wait_for(lambda: not watching._alive(watcher._folders[photos].observer), what="the emitter to stop")
    watcher.check()
    assert watcher.status()[0].mode == MISSING
    hints.wait(RESCAN, photos)


def test_folders_added_removed_and_changed_at_runtime(tmp_path, watcher, hints):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    watcher.apply([WatchSettings(path=one)])
    changes = watcher.apply([WatchSettings(path=one), WatchSettings(path=two)])
    assert [w.path for w in changes.added] == [two] and not changes.removed and not changes.changed
    hints.wait(CHANGED, _write(two / "a.jpg"))

    changes = watcher.apply([WatchSettings(path=two, exclude=("**/skip/**",))])
    assert [w.path for w in changes.removed] == [one]
    assert [w.path for w in changes.changed] == [two]
    assert [s.path for s in watcher.status()] == [str(two)]
    hints.clear()
    _write(one / "ignored.jpg")
    _write(two / "skip" / "ignored.jpg")
    hints.wait(CHANGED, _write(two / "b.jpg"))
    assert not [h for h in hints.items if "ignored" in str(h.path)]
    assert not watcher.apply([WatchSettings(path=two, exclude=("**/skip/**",))])


def test_stop_ends_every_thread(tmp_path, hints):
    before = set(threading.enumerate())
    folders = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        folders.append(WatchSettings(path=tmp_path / name, polling="always" if name == "c" else "auto"))
    watcher = Watcher(hints, mountinfo=lambda: "")
    watcher.apply(folders)
    assert watcher.wait_started(5)
    assert watcher.check().healthy
    watcher.stop()
    wait_for(lambda: not (set(threading.enumerate()) - before), timeout=10, what="watch threads to end")


UNSHARE = shutil.which("unshare") or ""  # "": not installed


@pytest.mark.skipif(not UNSHARE, reason="needs unshare(1)")
def test_the_real_inotify_watch_limit(tmp_path):
    """In a user namespace of its own, lower the real limit and watch a tree bigger than it."""
    script = tmp_path / "limit.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging, sys, time
            from pathlib import Path
            sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
            from dupe_scanner.service.watching import Watcher
            from dupe_scanner.settings import WatchSettings
            root = Path({str(tmp_path / "tree")!r})
            for index in range(20):
                (root / f"folder{{index}}").mkdir(parents=True)
            Path("/proc/sys/user/max_inotify_watches").write_text("5")
            logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
            hints = []
            watcher = Watcher(hints.append, mountinfo=lambda: "")
            watcher.apply([WatchSettings(path=root, poll_interval=0.2)])
            watcher.wait_started(10)
            print("MODE", watcher.status()[0].mode)
            (root / "folder19" / "x.jpg").write_bytes(b"x")
            deadline = time.time() + 10
            while time.time() < deadline and not any(h.path.name == "x.jpg" for h in hints):
                time.sleep(0.05)
            print("SEEN", any(h.path.name == "x.jpg" for h in hints))
            watcher.stop()
            """
        )
    )
    probe = subprocess.run([UNSHARE, "--user", "--map-root-user", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available here")
    result = subprocess.run(
        [UNSHARE, "--user", "--map-root-user", sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    if "Read-only file system" in result.stderr or "Permission denied" in result.stderr:
        pytest.skip("the inotify limit cannot be lowered in a user namespace here")
    assert result.returncode == 0, result.stderr
    assert "MODE polling" in result.stdout
    assert "inotify watch limit reached" in result.stdout
    assert "SEEN True" in result.stdout


def test_a_slow_first_snapshot_holds_nothing_up(tmp_path, hints, monkeypatch):
    """Polling a big share starts with a walk of the whole tree: apply() and check() must not
    wait for it, and a rescan follows, for changes made while it ran."""
    from watchdog.observers.polling import PollingObserver

    class SlowStart(PollingObserver):
        def on_thread_start(self):
            time.sleep(1.5)
            super().on_thread_start()

    monkeypatch.setattr(watching, "PollingObserver", SlowStart)
    monkeypatch.setattr(watching, "SLOW_SNAPSHOT_SECONDS", 0.5)
    photos = tmp_path / "photos"
    photos.mkdir()
    watcher = Watcher(hints, mountinfo=lambda: "")
    try:
        began = time.monotonic()
        watcher.apply([WatchSettings(path=photos, polling="always", poll_interval=0.2)])
        assert time.monotonic() - began < 1.0
        health = watcher.check()
        assert health.healthy and not health.restarted
        assert watcher.status()[0].mode == POLLING
        assert watcher.wait_started(10)
        hints.wait(RESCAN, photos)
        hints.wait(CHANGED, _write(photos / "after.jpg"))
        assert not watcher.check().restarted
    finally:
        watcher.stop()


def test_stopping_a_folder_while_its_snapshot_is_taken(tmp_path, hints, monkeypatch):
    from watchdog.observers.polling import PollingObserver

    class SlowStart(PollingObserver):
        def on_thread_start(self):
            time.sleep(0.5)
            super().on_thread_start()

    monkeypatch.setattr(watching, "PollingObserver", SlowStart)
    photos = tmp_path / "photos"
    photos.mkdir()
    before = set(threading.enumerate())
    watcher = Watcher(hints, mountinfo=lambda: "")
    watcher.apply([WatchSettings(path=photos, polling="always", poll_interval=0.2)])
    watcher.apply([])
    wait_for(lambda: not (set(threading.enumerate()) - before), timeout=10, what="the late observer to be stopped")
