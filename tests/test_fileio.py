"""Atomic writes: a reader sees the old file or the new one, never half, never a temp file."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time

import pytest

from dupe_scanner import fileio
from dupe_scanner.errors import FileWriteError
from dupe_scanner.fileio import atomic_write_bytes, atomic_write_stream, remove_stale_temp_files


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(fileio.TEMP_SUFFIX))


def test_writes_a_new_file_readable_by_others(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_bytes(target, b"hello")
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


def test_replaces_an_existing_file_and_keeps_its_mode(tmp_path):
    target = tmp_path / "report.json"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new" * 100_000)
    assert target.read_bytes() == b"new" * 100_000
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_explicit_mode_wins(tmp_path):
    target = tmp_path / "x"
    atomic_write_bytes(target, b"", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_rename_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "duplicates.json"
    target.write_bytes(b"previous report")

    def refuse(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fileio.os, "replace", refuse)
    with pytest.raises(FileWriteError) as caught:
        atomic_write_bytes(target, b"new report")
    assert "previous version is left unchanged" in str(caught.value)
    assert target.read_bytes() == b"previous report"
    assert leftovers(tmp_path) == []


def test_a_full_disk_leaves_the_old_file_and_says_so(tmp_path, monkeypatch):
    target = tmp_path / "duplicates.html"
    target.write_bytes(b"previous report")
    real_write = os.write
    calls = []

    def fill_up(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[:10])  # a short write first: the loop must go on

    monkeypatch.setattr(fileio.os, "write", fill_up)
    with pytest.raises(FileWriteError) as caught:
        atomic_write_bytes(target, b"x" * 1000)
    message = str(caught.value)
    assert "no space left" in message and str(target) in message
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.ENOSPC
    assert target.read_bytes() == b"previous report"
    assert leftovers(tmp_path) == []


def test_a_file_written_in_parts_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "table"
    target.write_bytes(b"old")

    def write(handle):
        for part in (b"first ", b"second ", b"third"):
            handle.write(part)

    atomic_write_stream(target, write)
    assert target.read_bytes() == b"first second third" and leftovers(tmp_path) == []


def test_a_disk_filling_up_midway_through_the_parts_leaves_the_old_file_and_says_so(tmp_path):
    target = tmp_path / "table"
    target.write_bytes(b"old")

    def write(handle):
        handle.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileWriteError, match="no space left") as caught:
        atomic_write_stream(target, write)
    assert str(target) in str(caught.value)
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_a_failed_fsync_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "r"
    target.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fileio.os, "fsync", broken_fsync)
    with pytest.raises(FileWriteError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileWriteError, match="folder does not exist"):
        atomic_write_bytes(tmp_path / "nowhere" / "r.json", b"{}")


def test_a_read_only_folder_leaves_the_old_file(tmp_path, monkeypatch):
    folder = tmp_path / "reports"
    folder.mkdir()
    target = folder / "duplicates.json"
    target.write_bytes(b"old")

    def refuse(*args, **kwargs):
        # Tests run as root, which chmod cannot lock out; refuse the way the kernel would.
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(FileWriteError, match="permission denied"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"


def test_stale_temp_files_of_interrupted_writes_are_removed_when_old(tmp_path):
    old = tmp_path / ".duplicates.json.abc123.tmp"
    fresh = tmp_path / ".duplicates.json.def456.tmp"
    other = tmp_path / ".other.json.abc.tmp"
    for path in (old, fresh, other):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 7200
    os.utime(old, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    removed = remove_stale_temp_files(tmp_path, "duplicates.json", older_than_seconds=3600)
    assert removed == [old]
    assert fresh.exists() and other.exists()
