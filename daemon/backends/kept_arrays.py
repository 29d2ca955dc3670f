"""Named arrays kept in a file beside the state between scans: the embedded backend's caches.

A file holds its arrays as consecutive ``.npy`` records (numpy's own format: a short header,
then the bytes, read into the array in one call), after a first record that names them.

They were ``np.savez`` archives. A zip member is read through a CRC check and copied on the
way, and ``savez`` builds the whole archive in memory before it is written: at a million
contents, the kept hash table (136 MB) cost 0.1 to 0.3 s to read and about 0.25 s and two
copies of it in memory to write, at every scan that added a picture. These are read in
0.03 s and written straight to their file.

Written atomically (``fileio``: a temporary file, flushed, then renamed), so a reader finds
the old file or the new one, whole. Files of the earlier kind (``legacy_file``) are still
read, so an upgrade does not make a large library build its kept indexes again.
"""

from __future__ import annotations

import logging
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dupe_scanner.errors import FileWriteError
from dupe_scanner.fileio import atomic_write_stream, remove_quietly, remove_stale_temp_files

log = logging.getLogger(__name__)

# What a damaged or foreign file raises when read: each store reads it from the state again.
UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
MAPPED_BYTES = 1 << 20  # smaller arrays are read: not worth a mapping of their own


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Replace ``path`` with ``arrays``; a file of the earlier kind beside it goes.

    Raises ``FileWriteError`` (a full disk, no permission), the old file left as it was."""

    def write(handle: BinaryIO) -> None:
        np.save(handle, np.array(list(arrays), dtype=str), allow_pickle=False)
        for array in arrays.values():
            np.save(handle, np.asarray(array), allow_pickle=False)

    remove_stale_temp_files(path.parent, path.name)  # a write killed midway left one (136 MB at a million)
    atomic_write_stream(path, write)
    remove_quietly(legacy_file(path))


def read_arrays(path: Path, mapped: bool = False) -> dict[str, np.ndarray]:
    """The arrays ``write_arrays`` wrote to ``path``, or those of the earlier kind of file
    when there is no file at ``path`` or that one is newer (an earlier version ran since:
    what it wrote is what the state now holds). Raises ``FileNotFoundError`` when there is
    neither, and one of ``UNREADABLE`` when a file is damaged or not of this kind.

    ``mapped``: arrays of ``MAPPED_BYTES`` or more are mapped from the file, read-only, not
    read into memory (``_mapped``)."""
    if _newer_or_alone(legacy_file(path), path):
        with np.load(legacy_file(path), allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        _write_as_this_kind(path, arrays)
        return arrays
    with open(path, "rb") as handle:
        names = np.load(handle, allow_pickle=False)
        if not isinstance(names, np.ndarray) or names.ndim != 1 or names.dtype.kind != "U":
            raise ValueError("not a file of kept arrays (its first record names none)")
        return {str(name): _mapped(path, handle) if mapped else np.load(handle, allow_pickle=False) for name in names.tolist()}


def _mapped(path: Path, handle: BinaryIO) -> np.ndarray:
    """The next record of ``handle``, mapped from its file if it is large. A scan that adds a
    picture to a library of a million reads the kept hash table (136 MB) to copy it once
    with the new rows in: read first, the table was copied twice, 0.27 to 0.53 s in a new
    process; mapped, 0.08 to 0.1 s, and the file's pages are the kernel's to drop. The file
    is only ever replaced by a rename, never written in place, so a mapping stays whole."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"a record of .npy version {version}, which is not kept here")
    if dtype.hasobject:
        raise ValueError("a record of Python objects, which is not kept here")
    start, count = handle.tell(), math.prod(shape)
    if count * dtype.itemsize < MAPPED_BYTES:
        array = np.fromfile(handle, dtype=dtype, count=count)
        if len(array) != count:
            raise EOFError(f"{path}: a record cut short")
        return array.reshape(shape, order="F" if fortran_order else "C")
    end = start + count * dtype.itemsize
    if end > os.fstat(handle.fileno()).st_size:
        raise EOFError(f"{path}: a record cut short")
    # Mapped from the handle the headers were read from: the path may name a newer file by now.
    mapped = np.memmap(handle, dtype=dtype, mode="r", offset=start, shape=shape, order="F" if fortran_order else "C")
    handle.seek(end)
    return np.asarray(mapped)


def _write_as_this_kind(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Replace a file of the earlier kind as it is read: a store writes its file only when it
    changes, the keypoint keys once per thousand new pictures, and until then every scan read
    them through zip's CRC check (0.35 s a scan at a million pictures). A file that cannot be
    written now is read as it is, and replaced by a later read or write."""
    try:
        write_arrays(path, arrays)
    except FileWriteError as error:
        log.debug("%s is read as an earlier version wrote it: %s", legacy_file(path), error)


def _newer_or_alone(legacy: Path, path: Path) -> bool:
    try:
        legacy_written = legacy.stat().st_mtime_ns
    except FileNotFoundError:
        return not path.exists()  # neither: np.load raises FileNotFoundError, as documented
    try:
        return legacy_written > path.stat().st_mtime_ns
    except FileNotFoundError:
        return True


def legacy_file(path: Path) -> Path:
    """Where the earlier kind of file (an ``np.savez`` archive) was kept: ``path`` + ``.npz``."""
    return path.with_name(path.name + ".npz")


def remove_arrays(path: Path) -> None:
    """``path`` and any file of the earlier kind beside it."""
    remove_quietly(path)
    remove_quietly(legacy_file(path))
