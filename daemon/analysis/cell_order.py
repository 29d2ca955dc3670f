"""Many descriptors' nearest points looked up together, in the order of their nearest cells.

A search of a base of inverted lists reads, for each descriptor, the lists of its 16 nearest
cells: at 300,000 camera photographs 886 KB of them, far more than a core's caches hold, so
a descriptor's search waits on memory, and a base walked in spans pages its lists in again
for every batch. Descriptors in one cell probe nearly the same lists. Searched sorted by
their nearest cell, a batch reads a few hundred neighbouring cells' lists, each once from
memory and then from the cache, for all the descriptors that probe it.

The points found do not change: each descriptor's nearest points are its own, whatever is
searched beside it. On that base, 2,000 pictures' own and mirrored descriptors (639,843) took
83.7 µs each sorted against 117.4 in a scan's order, one thread (``bench/README.md``,
"Descriptors searched in the order of their cells").
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dupe_scanner.analysis.candidates import Cells, PointIndex

SEARCH_BATCH = 10_240  # descriptors a search call holds: a scan's 64 pictures of 160 points
FARTHEST = np.iinfo(np.uint8).max  # distances are kept to a byte: 256 bits apart reads 255, still far


@dataclass
class Found:
    """The ``k`` nearest points of each of many descriptors, in their order: Hamming distances
    (255 for 255 or more, and where there is no point) and image rows (-1: none), kept small
    (5 bytes a point) while the votes are counted a few pictures at a time."""

    distances: np.ndarray  # uint8[n, k]
    rows: np.ndarray  # int32[n, k]

    def of(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The distances and rows found for descriptors ``start`` to ``end``, kept small as they are."""
        return self.distances[start:end], self.rows[start:end]


def search_together(points: PointIndex, descriptors: np.ndarray, k: int, pool: ThreadPoolExecutor) -> Found:
    """The ``k`` nearest points of each descriptor, searched ``SEARCH_BATCH`` at a time in the
    order of their nearest cells (as they come where ``points`` has no cells), in ``pool``'s
    threads (each running faiss on one core)."""
    found = Found(np.empty((len(descriptors), k), dtype=np.uint8), np.empty((len(descriptors), k), dtype=np.int32))
    cells = _cells_of(points, descriptors, pool)
    order = np.arange(len(descriptors)) if cells is None else np.argsort(cells.numbers[:, 0], kind="stable")

    def search(batch: np.ndarray) -> None:
        distances, rows = points.search(np.ascontiguousarray(descriptors[batch]), k, None if cells is None else cells.of(batch))
        found.distances[batch] = np.minimum(distances, FARTHEST)
        found.rows[batch] = rows

    for _ in pool.map(search, _slices(order, SEARCH_BATCH)):
        pass
    return found


@dataclass
class _Cells:
    """Many descriptors' nearest cells, kept small (5 bytes a cell) until their batch is searched."""

    distances: np.ndarray  # uint8[n, probed]
    numbers: np.ndarray  # int32[n, probed], -1: none

    def of(self, batch: np.ndarray) -> Cells:
        return self.distances[batch].astype(np.int32), self.numbers[batch].astype(np.int64)


def _cells_of(points: PointIndex, descriptors: np.ndarray, pool: ThreadPoolExecutor) -> _Cells | None:
    """Each descriptor's nearest cells as the search probes them, found ``SEARCH_BATCH`` at a
    time in ``pool``'s threads and kept small as each batch is found; None where ``points``
    has no cells."""
    first = pool.submit(points.cells_of, descriptors[:SEARCH_BATCH]).result()
    if first is None:
        return None
    probed = first[1].shape[1]
    cells = _Cells(np.empty((len(descriptors), probed), dtype=np.uint8), np.empty((len(descriptors), probed), dtype=np.int32))

    def keep(rows: slice, found: Cells) -> None:
        cells.distances[rows], cells.numbers[rows] = np.minimum(found[0], FARTHEST), found[1]

    def look_up(rows: slice) -> None:
        found = points.cells_of(descriptors[rows])
        assert found is not None
        keep(rows, found)

    keep(slice(0, SEARCH_BATCH), first)
    for _ in pool.map(look_up, [slice(start, start + SEARCH_BATCH) for start in range(SEARCH_BATCH, len(descriptors), SEARCH_BATCH)]):
        pass
    return cells


def _slices(order: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), size):
        yield order[start : start + size]
