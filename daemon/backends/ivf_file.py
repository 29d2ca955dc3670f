"""Writing a keypoint index's file from its shards, without holding its lists in memory.

A large keypoint base is built a shard at a time, each shard an index file of its own in the
same cells (``keypoint_store``). The shards were then copied into one index in memory, with
lists of their exact size, and that index written: the build held the whole base (1.5 GB at
a million pictures; the build's peak was 1.9 GB, and the scan's 2.3 GB with its workers).

Here the file is written straight from the shards, a span of cells at a time, each shard's
file mapped and its pages given back after each span. The file is the one
faiss writes for an index whose lists are in memory, byte for byte (the header faiss writes
for the index with empty lists, then its ``ilar`` lists: their sizes, then each list's codes
and ids): faiss reads it, mapped, as any other. Merging segments writes them the same way.
"""

from __future__ import annotations

import contextlib
import mmap
import resource
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np

from dupe_scanner.backends.mapped_lists import FAULT_AROUND, released

ID_BYTES = 8  # faiss's idx_t
WRITE_BYTES = 16 << 20  # lists gathered before each write (held twice: the shards' pages, the copy)
OTHER_OPEN_FILES = 256  # beside the shards: the state, its indexes, the watches, the workers' pipes


def write_from_shards(cells: faiss.IndexBinaryIVF, shards: Sequence[Path], destination: Path) -> int:
    """Write an index in the cells of ``cells`` (an empty index) holding the points of
    ``shards`` (index files in the same cells), each shard's numbered on from the last one's,
    to ``destination``; the points written. Raises ``OSError`` if it cannot be written."""
    mapped: list[_Shard] = []
    _allow_open_files(len(shards) + OTHER_OPEN_FILES)
    try:
        for path in shards:
            mapped.append(_Shard(path, cells.code_size))
        return _written(cells, mapped, destination)
    finally:
        for shard in mapped:
            shard.close()


def _allow_open_files(count: int) -> None:
    """Let this process hold ``count`` files open, up to its hard limit: each mapped shard
    holds its file open (Python's ``mmap``), 125 of them at a million camera photographs,
    and systemd starts a service with a soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
        with contextlib.suppress(ValueError, OSError):  # else a shard past the limit fails to open: the build's error says so
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _written(cells: faiss.IndexBinaryIVF, shards: list[_Shard], destination: Path) -> int:
    # A list's size in int32 (a shard's or a segment's holds far fewer points): a row
    # for every shard and a column for every cell, 32 MB at a million camera photographs.
    sizes = np.stack([shard.sizes() for shard in shards]) if shards else np.zeros((0, cells.nlist), dtype=np.int32)
    if sizes.shape[1] != cells.nlist:
        raise OSError(f"{', '.join(str(shard.path) for shard in shards)}: not in the index's {cells.nlist} cells")
    firsts = np.concatenate([[0], np.cumsum(sizes.sum(axis=1, dtype=np.int64))])
    with open(destination, "wb") as out:
        out.write(_header(cells, int(firsts[-1])))
        out.write(_list_sizes(cells, sizes.sum(axis=0, dtype=np.int64)))
        for first, end in _spans(sizes, cells.code_size):
            out.write(b"".join(_lists(shards, sizes, firsts[:-1], first, end)))
            for shard in shards:
                shard.release(first, end)
    return int(firsts[-1])


class _Shard:
    """A shard's lists, mapped from its file: where each cell's list starts, its codes and ids.

    faiss reads the file only to say where its lists lie; its index is then let go and the
    file mapped here. Kept, faiss's index held each shard's cell centres and list table in
    memory: at a million camera photographs (125 shards of 50,588 cells) most of the 885 MB
    of the process's own memory at the build's peak (``bench/README.md``, "A million camera
    photographs, and the pages of the build's shards")."""

    def __init__(self, path: Path, code_size: int):
        self.path, self.code_size = path, code_size
        # Each list's offset in the file (its codes, then its ids), then the file's end: a
        # list's capacity in a written file is its size, and each follows the one before.
        self.starts = _list_starts(path, code_size)
        with open(path, "rb") as file:
            self.mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self.bytes = np.frombuffer(self.mapping, dtype=np.uint8)

    def sizes(self) -> np.ndarray:
        """int32[cells]: the points in each cell's list."""
        return (np.diff(self.starts) // (self.code_size + ID_BYTES)).astype(np.int32)

    def codes(self, cell: int, size: int) -> np.ndarray:
        start = int(self.starts[cell])
        return self.bytes[start : start + size * self.code_size]

    def ids(self, cell: int, size: int) -> np.ndarray:
        start = int(self.starts[cell]) + size * self.code_size
        return self.bytes[start : start + size * ID_BYTES].view("<i8")

    def release(self, first: int, end: int) -> None:
        """Give back this process's pages of the lists of cells ``[first, end)``, and those
        the kernel mapped back before them (``FAULT_AROUND``)."""
        start, stop = released(int(self.starts[first]), int(self.starts[end]), len(self.mapping), FAULT_AROUND)
        if stop > start:
            with contextlib.suppress(OSError, ValueError):  # only the memory figure suffers
                self.mapping.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def close(self) -> None:
        """Unmap the file now, unless views of it are still held (by an error's traceback,
        say): then when the last goes."""
        del self.bytes
        with contextlib.suppress(BufferError):
            self.mapping.close()


def _list_starts(path: Path, code_size: int) -> np.ndarray:
    """int64[cells + 1]: where each list of the index file at ``path`` starts, then the file's end."""
    try:
        index = faiss.read_index_binary(str(path), faiss.IO_FLAG_MMAP)
    except RuntimeError as error:
        raise OSError(f"{path}: cannot be read as a keypoint index ({error})") from None
    lists = faiss.downcast_InvertedLists(index.invlists) if isinstance(index, faiss.IndexBinaryIVF) else None
    if not isinstance(index, faiss.IndexBinaryIVF) or not isinstance(lists, faiss.OnDiskInvertedLists) or index.code_size != code_size:
        raise OSError(f"{path}: not an index of inverted lists of {code_size}-byte codes")
    table = lists.lists
    return np.array([table.at(cell).offset for cell in range(index.nlist)] + [lists.totsize], dtype=np.int64)  # type: ignore[attr-defined]  # a SWIG vector


def _header(cells: faiss.IndexBinaryIVF, points: int) -> bytes:
    """What faiss writes before the lists, for the index of ``cells`` holding ``points``."""
    empty_lists = _list_sizes(cells, np.zeros(cells.nlist, dtype=np.int64))
    cells.ntotal = points
    try:
        written = faiss.serialize_index_binary(cells).tobytes()
    finally:
        cells.ntotal = 0
    if not written.endswith(empty_lists):
        raise OSError("faiss no longer writes an index of inverted lists as this version expects; it is kept in memory")
    return written[: -len(empty_lists)]


def _list_sizes(cells: faiss.IndexBinaryIVF, sizes: np.ndarray) -> bytes:
    """faiss's ``ilar`` lists up to their data: the sizes of all lists, or of those not empty
    as (cell, size) pairs when they are at most half."""
    head = b"ilar" + struct.pack("<QQ", cells.nlist, cells.code_size)
    filled = np.flatnonzero(sizes)
    if len(filled) > cells.nlist // 2:
        return head + b"full" + struct.pack("<Q", len(sizes)) + sizes.astype("<u8").tobytes()
    pairs = np.stack([filled, sizes[filled]], axis=1).astype("<u8")
    return head + b"sprs" + struct.pack("<Q", pairs.size) + pairs.tobytes()


def _spans(sizes: np.ndarray, code_size: int) -> Iterator[tuple[int, int]]:
    """Cell ranges whose lists, in every shard together, hold about ``WRITE_BYTES``."""
    ends = np.cumsum(sizes.sum(axis=0) * (code_size + ID_BYTES))
    first = 0
    while first < len(ends):
        reached = (ends[first - 1] if first else 0) + WRITE_BYTES
        end = max(first + 1, int(np.searchsorted(ends, reached, side="right")))
        yield first, end
        first = end


def _lists(shards: list[_Shard], sizes: np.ndarray, firsts: np.ndarray, first: int, end: int) -> Iterator[memoryview]:
    """The lists of cells ``[first, end)`` as faiss writes them: each list's codes, every
    shard's in turn (views of the mapped shards), then their ids, each shard's numbered on
    from ``firsts`` of it."""
    for cell in range(first, end):
        held = [(shard, int(size), int(offset)) for shard, size, offset in zip(shards, sizes[:, cell], firsts, strict=True) if size]
        for shard, size, _ in held:
            yield shard.codes(cell, size).data
        for shard, size, offset in held:
            yield (shard.ids(cell, size) + offset).data
