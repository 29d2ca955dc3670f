"""Small real file systems for the tests of a full disk: a tmpfs mounted at a folder, filled."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs_mounts() -> Iterator:
    """``mount(folder, size)`` mounts a tmpfs of ``size`` ("2m") at ``folder``, made if need be;
    skips the test where mounting is not permitted. Every one is unmounted on leaving."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in reversed(mounted):
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``folder`` until ``leave_bytes`` are free."""
    stat = os.statvfs(folder)
    filler = folder / "filler"
    size = max(0, stat.f_bavail * stat.f_frsize - leave_bytes)
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * size)
    return filler
