"""Writing files so that a reader never sees half of one.

``atomic_write_bytes`` writes to a temporary file in the target's own folder (so the
final rename never crosses a file system), flushes it to disk, renames it over the
target, and flushes the folder so the rename itself survives a power cut. Any failure,
a full disk included, removes the temporary file and leaves the previous version of the
target exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dupe_scanner.errors import FileWriteError

TEMP_SUFFIX = ".tmp"
DEFAULT_MODE = 0o644  # reports are meant to be read by people and web servers


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically.

    The new file gets ``mode``, else the mode of the file it replaces, else 0644 (a
    temporary file would otherwise be readable by its owner only). Raises
    ``FileWriteError`` with the reason (a full disk, no permission, ...) and the
    previous content of ``path`` untouched.
    """
    atomic_write_all([(Path(path), data)], mode)


def atomic_write_all(files: list[tuple[Path, bytes]], mode: int | None = None) -> None:
    """Replace several files, all or none: every new version is written and flushed to a
    temporary file first, and only then are they renamed over the old ones.

    A full disk therefore never leaves a mix of new and old reports: it fails while
    writing the temporary files, before anything was replaced.
    """
    staged: list[tuple[str, Path]] = []
    current: Path | None = None
    try:
        for current, data in files:
            staged.append((_write_temporary(current, data, _existing_mode(current) if mode is None else mode), current))
        for temp_name, current in staged:
            os.replace(temp_name, current)
        staged = []
        for folder in sorted({path.parent for path, _ in files}):
            fsync_folder(folder)
    except OSError as error:
        raise FileWriteError(_describe(current, error)) from error
    finally:
        for temp_name, _ in staged:
            remove_quietly(Path(temp_name))


def atomic_write_stream(path: Path, write: Callable[[BinaryIO], object], mode: int | None = None) -> None:
    """``atomic_write_bytes`` of what ``write`` writes into the file it is given: for a large
    file made a part at a time, which need not be held whole in memory first."""
    path = Path(path)
    temp_name = None
    try:
        temp_name = _write_temporary(path, write, _existing_mode(path) if mode is None else mode)
        os.replace(temp_name, path)
        temp_name = None
        fsync_folder(path.parent)
    except OSError as error:
        raise FileWriteError(_describe(path, error)) from error
    finally:
        if temp_name is not None:
            remove_quietly(Path(temp_name))


def _write_temporary(path: Path, content: bytes | Callable[[BinaryIO], object], mode: int) -> str:
    """A flushed temporary file beside ``path`` holding ``content`` (or what it writes)."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        if callable(content):
            with os.fdopen(fd, "wb", closefd=False) as handle:
                content(handle)
        else:
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_quietly(Path(temp_name))
        raise
    os.close(fd)
    return temp_name


def remove_stale_temp_files(folder: Path, name: str, older_than_seconds: float = 3600.0, now: float | None = None) -> list[Path]:
    """Remove temporary files that an interrupted ``atomic_write_bytes`` of ``folder/name`` left.

    Only files older than ``older_than_seconds`` go, so a write in progress in another
    process is never disturbed. Returns what was removed.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = list(Path(folder).glob(f".{_glob_escape(name)}.*{TEMP_SUFFIX}"))
    except OSError:
        return removed
    for candidate in sorted(candidates):
        try:
            if now - candidate.lstat().st_mtime >= older_than_seconds and candidate.is_file():
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue
    return removed


def _existing_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return DEFAULT_MODE


def fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # the rename is done; some file systems cannot open folders for syncing
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make ``path``'s bytes durable (a file written by another library, before it is referenced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _describe(path: Path | None, error: OSError) -> str:
    """``path``: the file being written; None before the first (then ``error`` names it, if anything)."""
    path = path if path is not None else error.filename
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "no space left on the device (or the disk quota is used up)"
    elif error.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied (the service user needs write access to the folder)"
    elif error.errno == errno.EROFS:
        why = "the file system is read-only"
    elif error.errno == errno.ENOENT:
        why = "the folder does not exist"
    else:
        why = error.strerror or str(error)
    return f"{path}: cannot be written: {why}; its previous version is left unchanged"


def _glob_escape(name: str) -> str:
    return "".join(f"[{char}]" if char in "*?[" else char for char in name)
