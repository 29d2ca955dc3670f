"""The stability tracker: a file is handed on only once it has stopped changing."""

import os
import threading
import time
from pathlib import Path

import pytest

from dupe_scanner.service.stability import StabilityTracker


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeDisk:
    """stat() answers from a dict: (size, mtime_ns), or missing."""

    def __init__(self):
        self.files: dict[Path, tuple[int, int]] = {}

    def stat(self, path):
        if path not in self.files:
            raise FileNotFoundError(path)
        size, mtime = self.files[path]
        return _Stat(size, mtime)


class _Stat:
    def __init__(self, size, mtime_ns):
        self.st_size = size
        self.st_mtime_ns = mtime_ns


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def disk():
    return FakeDisk()


@pytest.fixture
def tracker(clock, disk):
    return StabilityTracker(5.0, clock=clock, stat=disk.stat)


A = Path("/photos/a.jpg")
B = Path("/photos/b.jpg")


def test_a_quiet_unchanged_file_settles_after_stable_seconds(tracker, clock, disk):
    disk.files[A] = (100, 1)
    tracker.touch(A)
    clock.advance(4.9)
    assert not tracker.poll()
    clock.advance(0.1)
    settled = tracker.poll()
    assert settled.stable == [A] and settled.vanished == []
    assert A not in tracker and len(tracker) == 0


def test_every_event_restarts_the_quiet_period(tracker, clock, disk):
    disk.files[A] = (100, 1)
    tracker.touch(A)
    for _ in range(5):
        clock.advance(3)
        disk.files[A] = (disk.files[A][0] + 100, disk.files[A][1] + 1)
        tracker.touch(A)
        assert not tracker.poll().stable
    clock.advance(5)
    assert tracker.poll().stable == [A]


def test_a_change_without_an_event_rearms_the_file(tracker, clock, disk):
    disk.files[A] = (100, 1)
    tracker.touch(A)
    clock.advance(5)
    disk.files[A] = (200, 2)  # written on a share: no event came
    assert not tracker.poll().stable
    assert A in tracker
    clock.advance(4)
    assert not tracker.poll()
    clock.advance(1)
    assert tracker.poll().stable == [A]


def test_same_size_new_mtime_is_a_change(tracker, clock, disk):
    disk.files[A] = (100, 1)
    tracker.touch(A)
    disk.files[A] = (100, 2)
    clock.advance(5)
    assert not tracker.poll().stable


def test_a_file_that_vanished_is_reported_as_such(tracker, clock, disk):
    disk.files[A] = (100, 1)
    tracker.touch(A)
    del disk.files[A]
    clock.advance(5)
    settled = tracker.poll()
    assert settled.vanished == [A] and not settled.stable


def test_files_settle_in_order_and_independently(tracker, clock, disk):
    disk.files[A] = (1, 1)
    disk.files[B] = (1, 1)
    tracker.touch(A)
    clock.advance(2)
    tracker.touch(B)
    assert tracker.next_due() == clock.now - 2 + 5
    clock.advance(3)
    assert tracker.poll().stable == [A]
    assert tracker.next_due() == clock.now + 2
    clock.advance(2)
    assert tracker.poll().stable == [B]
    assert tracker.next_due() is None


def test_rename_keeps_waiting_under_the_new_name(tracker, clock, disk):
    disk.files[A] = (1, 1)
    tracker.touch(A)
    clock.advance(3)
    del disk.files[A]
    disk.files[B] = (1, 1)
    tracker.rename(A, B)
    assert A not in tracker and B in tracker
    clock.advance(3)
    assert not tracker.poll()
    clock.advance(2)
    assert tracker.poll().stable == [B]


def test_rename_of_an_untracked_file_does_nothing(tracker):
    tracker.rename(A, B)
    assert len(tracker) == 0


def test_forget_and_forget_under(tracker, disk):
    for name in ("x/1.jpg", "x/y/2.jpg", "xx/3.jpg", "4.jpg"):
        path = Path("/photos") / name
        disk.files[path] = (1, 1)
        tracker.touch(path)
    tracker.forget(Path("/photos/4.jpg"))
    tracker.forget_under(Path("/photos/x"))
    assert list(tracker._entries) == [Path("/photos/xx/3.jpg")]


def test_zero_stable_seconds_settles_at_the_next_poll(clock, disk):
    tracker = StabilityTracker(0, clock=clock, stat=disk.stat)
    disk.files[A] = (1, 1)
    tracker.touch(A)
    assert tracker.poll().stable == [A]


def test_unstatable_files_are_handed_on_for_the_indexer_to_explain(clock):
    def stat(path):
        raise PermissionError(13, "Permission denied")

    tracker = StabilityTracker(1, clock=clock, stat=stat)
    tracker.touch(A)
    clock.advance(1)
    assert tracker.poll().stable == [A]


def test_negative_stable_seconds_is_refused():
    with pytest.raises(ValueError):
        StabilityTracker(-1)


def test_a_file_written_slowly_in_chunks_settles_only_after_the_last_chunk(tmp_path):
    """Real file, real clock: a writer adds a chunk every 0.3 s for about 2 s, with no events
    telling the tracker (as on a polled share). It must not settle before the writer is done."""
    path = tmp_path / "slow.jpg"
    path.write_bytes(b"\xff\xd8")
    tracker = StabilityTracker(0.8)
    tracker.touch(path)
    finished = threading.Event()

    def writer():
        with open(path, "ab") as handle:
            for _ in range(7):
                time.sleep(0.3)
                handle.write(os.urandom(4096))
                handle.flush()
        finished.set()

    thread = threading.Thread(target=writer)
    thread.start()
    settled_at = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if tracker.poll().stable:
            settled_at = time.monotonic()
            break
        assert not finished.is_set() or path.stat().st_size == 2 + 7 * 4096
        time.sleep(0.05)
    thread.join()
    assert settled_at is not None, "never settled"
    assert finished.is_set(), "settled while the file was still being written"
    assert path.stat().st_size == 2 + 7 * 4096
