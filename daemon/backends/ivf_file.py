"""Writing a keypoint index's file from its shards, without holding its lists in memory.

A large keypoint base is built a shard at a time, each shard an index file of its own in the
same cells (``keypoint_store``). The shards were then copied into one index in memory, with
lists of their exact size, and that index written: the build held the whole base (1.5 GB at
a million pictures; the build's peak was 1.9 GB, and the scan's 2.3 GB with its workers).

Here the file is written straight from the shards, a span of cells at a time, each shard
mapped and its pages given back after each span (``mapped_lists``). The file is the one
faiss writes for an index whose lists are in memory, byte for byte (the header faiss writes
for the index with empty lists, then its ``ilar`` lists: their sizes, then each list's codes
and ids): faiss reads it, mapped, as any other. Merging segments writes them the same way.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np

from dupe_scanner.backends.mapped_lists import MappedLists

ID_BYTES = 8  # faiss's idx_t
WRITE_BYTES = 16 << 20  # lists gathered before each write (held twice: the shards' pages, the copy)


def write_from_shards(cells: faiss.IndexBinaryIVF, shards: Sequence[Path], destination: Path) -> int:
    """Write an index in the cells of ``cells`` (an empty index) holding the points of
    ``shards`` (index files in the same cells), each shard's numbered on from the last one's,
    to ``destination``; the points written. Raises ``OSError`` if it cannot be written."""
    mapped = [_Shard(path, cells.code_size) for path in shards]
    sizes = np.stack([shard.sizes for shard in mapped]) if mapped else np.zeros((0, cells.nlist), dtype=np.int64)
    if sizes.shape[1] != cells.nlist:
        raise OSError(f"{', '.join(map(str, shards))}: not in the index's {cells.nlist} cells")
    firsts = np.concatenate([[0], np.cumsum(sizes.sum(axis=1))])
    with open(destination, "wb") as out:
        out.write(_header(cells, int(firsts[-1])))
        out.write(_list_sizes(cells, sizes.sum(axis=0)))
        for first, end in _spans(sizes, cells.code_size):
            out.write(b"".join(_lists(mapped, sizes, firsts[:-1], first, end)))
            for shard in mapped:
                shard.release(first, end)
    return int(firsts[-1])


class _Shard(MappedLists):
    """A shard's lists, mapped: each cell's size, codes and ids."""

    def __init__(self, path: Path, code_size: int):
        index = faiss.read_index_binary(str(path), faiss.IO_FLAG_MMAP)
        lists = faiss.downcast_InvertedLists(index.invlists) if isinstance(index, faiss.IndexBinaryIVF) else None
        if not isinstance(index, faiss.IndexBinaryIVF) or not isinstance(lists, faiss.OnDiskInvertedLists) or index.code_size != code_size:
            raise OSError(f"{path}: not an index of inverted lists of {code_size}-byte codes")
        super().__init__(index, lists)
        # Looked up once: a list's place is asked for at every cell of every shard. A mapped
        # list's capacity is its size, and each follows the one before.
        self.starts = np.array([super(_Shard, self).start(cell) for cell in range(self.cells + 1)], dtype=np.int64)
        self.sizes = np.diff(self.starts) // (code_size + ID_BYTES)
        self.code_size = code_size
        self.bytes = faiss.rev_swig_ptr(lists.ptr, lists.totsize) if self.size else np.zeros(0, np.uint8)

    def start(self, cell: int) -> int:
        return int(self.starts[min(cell, self.cells)])

    def codes(self, cell: int) -> np.ndarray:
        start = int(self.starts[cell])
        return self.bytes[start : start + int(self.sizes[cell]) * self.code_size]

    def ids(self, cell: int) -> np.ndarray:
        start = int(self.starts[cell]) + int(self.sizes[cell]) * self.code_size
        return self.bytes[start : start + int(self.sizes[cell]) * ID_BYTES].view("<i8")


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
        held = [(shard, int(offset)) for shard, size, offset in zip(shards, sizes[:, cell], firsts, strict=True) if size]
        for shard, _ in held:
            yield shard.codes(cell).data
        for shard, offset in held:
            yield (shard.ids(cell) + offset).data
