"""Giving back the pages of a memory-mapped keypoint index as a search leaves them behind.

The kept keypoint base is searched from its file (``faiss.IO_FLAG_MMAP``), so a search reads
only the lists it probes. But a page once read stays in the process's resident memory until
the file is unmapped, and a scan's batches of descriptors probe most cells between them: at
a million pictures the whole base (1.5 GB) stayed resident through the search, and was most
of the scan's peak (2.0 to 2.2 GB, all processes; the issue's bound is 2 GB).

So a search of lists larger than ``HELD_BYTES`` walks its cells in *spans* of at most
``SPAN_BYTES`` of lists, in cell order, and after each span tells the kernel this process
no longer needs that span's pages (``madvise(MADV_DONTNEED)``). The pages stay in the page
cache, and the next batch of descriptors maps them again without reading the disk; a
process then holds about one span per searching thread. That is not free: each batch maps
again the pages it reads, and at a million pictures the search took 0.2 to 0.4 more CPU
(8.6 to 10.2 and 10.6 ms a picture; 9.1 to 13.0 where the page cache held the file in
smaller pieces, six times the page faults), hence the threshold: a smaller index stays
mapped whole, as before. The points found are the same, at the same distances, but for
which of the points tied at the last distance kept are kept (the spans come in cell order,
not nearest cell first).

faiss writes each list after the one before, in cell order, so a span of cells is one range
of the file, found from the lists at its two ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
from functools import cache

import faiss

log = logging.getLogger(__name__)

HELD_BYTES = 1 << 30  # mapped lists a search holds whole; larger ones are walked in spans
SPAN_BYTES = 256 << 20  # the lists a search walks before giving their pages back
PAGE = mmap.PAGESIZE


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
        """Give back this process's pages of the lists of cells ``[first, end)``. Partial pages
        at either end go too: a thread still reading them maps them again from the cache."""
        start = self.start(first) // PAGE * PAGE
        stop = min(self.size, -(-self.start(end) // PAGE) * PAGE)
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
