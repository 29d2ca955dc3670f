"""Holding the state alone: one service per state, and no repair while it runs.

A ``flock`` on ``<state>.lock`` beside the database, held for as long as the holder
runs. The kernel releases it when the process ends, however it ends, so it can never be
stale the way a pid file can. The holder writes its pid and job into the file so that
whoever is refused can name it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dupe_scanner.errors import StateError, StateInUse


def lock_path(state: Path) -> Path:
    return state.with_name(f"{state.name}.lock")


@contextmanager
def hold_state(state: Path, job: str) -> Iterator[None]:
    """Hold ``state`` alone for ``job`` (e.g. "dupe-scanner run"); raises ``StateInUse``
    at once, without waiting, when another process holds it."""
    path = lock_path(state)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    except OSError as error:
        raise StateError(f"cannot open the lock file {path}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateInUse(str(state), _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{job} (pid {os.getpid()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, empty of meaning until locked again


def _holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "another process (starting up)"
