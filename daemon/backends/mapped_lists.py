"""A memory-mapped keypoint index searched a span of cells at a time: each span's pages given
back as the search leaves them behind, and the cells numbered so that a span is a region.

The kept keypoint base is searched from its file (``faiss.IO_FLAG_MMAP``), so a search reads
only the lists it probes. But a page once read stays in the process's resident memory until
the file is unmapped, and a scan's batches of descriptors probe most cells between them: at
a million pictures the whole base (1.5 GB) stayed resident through the search, and was most
of the scan's peak (2.0 to 2.2 GB, all processes; the issue's bound is 2 GB).

So a search holds at most ``SPAN_BYTES`` of lists at once. Larger lists are walked in
*spans* of cells of at most that many bytes, in cell order, and after each span the process
tells the kernel it no longer needs that span's pages (``madvise(MADV_DONTNEED)``). The pages
stay in the page cache, and the next search maps them again without reading the disk. A
search of many descriptors searches all of them in one span, in every thread, before it
begins the next (``analysis.cell_order``), so a process holds one span at a time; a few
descriptors are searched in every span a batch at a time, each thread holding a span. A
base of 256 MB is some 40,000 camera photographs of 160 points, 180,000 of the simulation's
pictures; a smaller one is held whole. The points found are the same, at the same
distances, but for which of the points tied at the last distance are kept (the spans come
in cell order, not nearest cell first).

Held whole, the base of 100,000 camera photographs (631 MB) was most of their first scan's
peak (1,103 MiB, all processes, against the issue's 1 GB, when only bases over 1 GB were
walked). Walked in three spans, a part's search peaks at 604 to 613 MiB against 938 to 975
held whole, for about 6 % more search CPU (bench/README.md, "One span at a time").

faiss writes each list after the one before, in cell order, so a span of cells is one range
of the file, found from the lists at its two ends.

A descriptor whose nearest cells lie in several spans costs more than one whose cells lie in
one: faiss starts each search with an empty list of nearest points, so each span's search
keeps more points on its way than one search of them all would. With the cells numbered as
k-means trained them, a descriptor's 16 nearest cells lay in 5.4 of the 6 spans of a base of
a million simulated pictures, and its search in spans took 1.30 to 1.45 times the CPU of a
search of every cell at once, whether the pages were given back or not. So the cells of a
base that may be walked in spans are numbered near ones together (``near_cells_together``):
their cells lay in 2.2 spans, and the search in spans took 1.04 to 1.07 times
(bench/README.md, "Near cells numbered together").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
from functools import cache

import faiss
import numpy as np

log = logging.getLogger(__name__)

POINT_BYTES = 32 + 8  # a point in the lists: its code and its id
SPAN_BYTES = 256 << 20  # the most lists a search holds at once: larger ones are walked in spans of this
PAGE = mmap.PAGESIZE
# Reading a page of a mapped file, the kernel maps the pages around it it has cached (64 KB
# on Linux by default): the pages of the span before, given back already, came back with
# each span's first read, and stayed, 2.3 MB a span from 80 shards, most of the 1.4 GB of
# file pages a build held at a million camera photographs (``ivf_file``). So a span's
# release takes as much before it too: the build reads the shards in one pass, and a search
# has left the span before behind when it gives back a span.
FAULT_AROUND = 256 << 10
# Cells split in two until a group holds no more than this: a span holds thousands of them.
GROUPED_CELLS = 256


def released(start: int, stop: int, size: int, before: int = 0) -> tuple[int, int]:
    """The page-aligned range of a mapping of ``size`` bytes to give back for the bytes
    ``[start, stop)`` just read: partial pages at either end too (a thread still reading them
    maps them again from the page cache), and the ``before`` bytes before them."""
    return max(0, start - before) // PAGE * PAGE, min(size, -(-stop // PAGE) * PAGE)


class MappedLists:
    """The inverted lists of a faiss index read with ``IO_FLAG_MMAP``: where each cell's list
    starts in the mapping, and a way to give back the pages of a span of cells."""

    def __init__(self, index: faiss.IndexBinaryIVF, lists: faiss.OnDiskInvertedLists):
        self.index = index  # the mapping lives as long as the index: never advise on an unmapped range
        self.lists = lists
        self.address = int(lists.ptr)
        self.size = int(lists.totsize)
        self.cells = int(index.nlist)

    @classmethod
    def of(cls, index: faiss.IndexBinary) -> MappedLists | None:
        """The mapped lists of ``index``, or None if it holds none (an exhaustive index, lists in memory)."""
        if not isinstance(index, faiss.IndexBinaryIVF):
            return None
        lists = faiss.downcast_InvertedLists(index.invlists)
        if not isinstance(lists, faiss.OnDiskInvertedLists) or not lists.read_only or not int(lists.totsize):
            return None
        return cls(index, lists)

    def start(self, cell: int) -> int:
        """The offset of ``cell``'s list in the mapping (the mapping's end past the last cell)."""
        return self.size if cell >= self.cells else int(self.lists.lists.at(cell).offset)  # type: ignore[attr-defined]  # a SWIG vector

    def spans(self, most_bytes: int = SPAN_BYTES) -> list[tuple[int, int]]:
        """Cell ranges ``[first, end)`` covering every cell, each holding lists of at most
        ``most_bytes`` (or a single list, if one is larger)."""
        spans, first = [], 0
        while first < self.cells:
            end = self._end_within(first, self.start(first) + most_bytes)
            spans.append((first, end))
            first = end
        return spans

    def release(self, first: int, end: int) -> None:
        """Give back this process's pages of the lists of cells ``[first, end)``, and those the
        kernel mapped back before them (``released``, ``FAULT_AROUND``)."""
        start, stop = released(self.start(first), self.start(end), self.size, FAULT_AROUND)
        if stop > start:
            _dont_need(self.address + start, stop - start)

    def _end_within(self, first: int, limit: int) -> int:
        """The last cell end past ``first`` whose lists from ``first`` end by ``limit`` (at least
        ``first + 1``): a binary search, since the lists lie in cell order."""
        low, high = first + 1, self.cells
        while low < high:
            middle = (low + high + 1) // 2
            if self.start(middle) <= limit:
                low = middle
            else:
                high = middle - 1
        return low


def near_cells_together(centres: np.ndarray) -> np.ndarray:
    """The cells' centres (uint8[lists, 32]) in another order: near ones next to each other.

    The cells are split in two by 2-means, and each half again, until a group holds at most
    ``GROUPED_CELLS``; the groups come in the order of the splits, so cells next to each other
    in the order are near at every scale, and a span of it is a region of descriptor space.
    """
    groups: list[np.ndarray] = []
    pending = [np.arange(len(centres))]  # last in, first out: the groups come out left to right
    bits = np.unpackbits(centres, axis=1).astype(np.float32)
    while pending:
        group = pending.pop()
        halves = _halves(bits[group]) if len(group) > GROUPED_CELLS else None
        if halves is None:
            groups.append(group)
        else:
            pending += [group[halves], group[~halves]]
    return centres[np.concatenate(groups)] if groups else centres


def _halves(bits: np.ndarray) -> np.ndarray | None:
    """Which of the points go to the second of two k-means clusters; None if one is empty."""
    kmeans = faiss.Kmeans(bits.shape[1], 2, niter=10, seed=1234)
    kmeans.cp.min_points_per_centroid = 1  # faiss warns below 39 points a cluster; a split needs no more
    kmeans.train(bits)
    _, nearest = kmeans.index.search(bits, 1)
    second = nearest.ravel() == 1
    return second if 0 < second.sum() < len(second) else None


def _dont_need(address: int, length: int) -> None:
    advise = _madvise()
    if advise is None or advise(ctypes.c_void_p(address), ctypes.c_size_t(length), mmap.MADV_DONTNEED) == 0:
        return
    # Only the memory figure suffers; the search goes on as before.
    log.debug("the keypoint index's pages were not given back: %s", ctypes.get_errno())


@cache
def _madvise():
    """libc's ``madvise``, or None where there is none (the pages then stay until unmapped)."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        advise = libc.madvise
    except (OSError, AttributeError):
        return None
    advise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    advise.restype = ctypes.c_int
    return advise
