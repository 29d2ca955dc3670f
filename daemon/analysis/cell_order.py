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

A base too large to hold whole (``backends.mapped_lists``) is walked a span of cells at a
time: every descriptor with a nearest cell in the span is searched there, by every thread,
before the span's pages are given back and the next span is begun. So the process holds one
span of the base at a time, where batches walking every span each, two threads apart, held
most of it (``bench/README.md``, "One span at a time").
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dupe_scanner.analysis.candidates import PointIndex

SEARCH_BATCH = 10_240  # descriptors a search call holds: a scan's 64 pictures of 160 points
FARTHEST = np.iinfo(np.uint8).max  # distances are kept to a byte: 256 bits apart reads 255, still far
NO_CELL = np.iinfo(np.int32).max  # sorts after every cell

# Each descriptor's nearest cells of an index of inverted lists, as its search probes them:
# (distances, cell numbers), nearest first, one line a descriptor.
Cells = tuple[np.ndarray, np.ndarray]
Span = tuple[int, int]  # the cells [first, end) of an index of inverted lists


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

    def of_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distances and rows found for the descriptors numbered ``rows`` (copies)."""
        return self.distances[rows], self.rows[rows]


def search_together(points: PointIndex, descriptors: np.ndarray, k: int, pool: ThreadPoolExecutor) -> Found:
    """The ``k`` nearest points of each descriptor, searched ``SEARCH_BATCH`` at a time in the
    order of their nearest cells (as they come where ``points`` has no cells), in ``pool``'s
    threads (each running faiss on one core); a span of cells at a time where ``points``
    walks its cells in spans, each span's memory given back before the next."""
    found = Found(np.empty((len(descriptors), k), dtype=np.uint8), np.empty((len(descriptors), k), dtype=np.int32))
    cells = _cells_of(points, descriptors, pool)
    spans = points.spans() if cells is not None else []
    if cells is None or len(spans) <= 1:
        order = np.arange(len(descriptors)) if cells is None else np.argsort(cells.numbers[:, 0], kind="stable")
        _searched(points, descriptors, k, pool, found, cells, order)
        return found
    found.distances.fill(FARTHEST)
    found.rows.fill(-1)
    for span in spans:
        _searched(points, descriptors, k, pool, found, cells, _probing(cells.numbers, span), span)
        points.release(span)
    return found


def merge_nearest(results: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of several searches' (distances, rows), each nearest first with ``k``
    columns; points at equal distances in the order of the searches.

    A row changes only where a later search found a point nearer than the last one kept so
    far: the delta of a kept index (``backends.keypoint_store``) is small, and in most rows it
    has nothing that near, so only the few others are sorted again.
    """
    distances, rows = results[0]
    for more_distances, more_rows in results[1:]:
        changing = np.flatnonzero(more_distances[:, 0] < distances[:, -1])
        if not len(changing):
            continue
        both_distances = np.concatenate([distances[changing], more_distances[changing]], axis=1)
        both_rows = np.concatenate([rows[changing], more_rows[changing]], axis=1)
        order = np.argsort(both_distances, axis=1, kind="stable")[:, :k]
        distances, rows = distances.copy(), rows.copy()
        distances[changing] = np.take_along_axis(both_distances, order, axis=1)
        rows[changing] = np.take_along_axis(both_rows, order, axis=1)
    return distances, rows


def within(cells: Cells, span: Span) -> Cells:
    """``cells`` with those outside ``span`` made no cell (-1: faiss probes nothing there)."""
    distances, numbers = cells
    first, end = span
    return distances, np.where((numbers >= first) & (numbers < end), numbers, -1)


def _searched(
    points: PointIndex, descriptors: np.ndarray, k: int, pool: ThreadPoolExecutor, found: Found, cells: _Cells | None,
    order: np.ndarray, span: Span | None = None,
) -> None:
    """Search the descriptors ``order`` names, in that order, ``SEARCH_BATCH`` at a time, into
    ``found``: in ``span``'s cells alone and merged with what ``found`` holds, if given."""

    def search(batch: np.ndarray) -> None:
        distances, rows = points.search(np.ascontiguousarray(descriptors[batch]), k, None if cells is None else cells.of(batch), span)
        distances, rows = np.minimum(distances, FARTHEST).astype(np.uint8), rows.astype(np.int32)
        if span is not None:
            _merge_found_before(found, batch, distances, rows, k)
        found.distances[batch], found.rows[batch] = distances, rows

    for _ in pool.map(search, _slices(order, SEARCH_BATCH)):
        pass


def _merge_found_before(found: Found, batch: np.ndarray, distances: np.ndarray, rows: np.ndarray, k: int) -> None:
    """Merge into ``distances`` and ``rows`` (a span's search of the descriptors ``batch``
    names) the points ``found`` holds for them from the spans before. A descriptor's cells
    lie in two or three spans: in the first, nothing was found before, and what this span
    found is taken as it is, not sorted again with nothing."""
    before_distances, before_rows = found.of_rows(batch)
    met = np.flatnonzero(before_distances[:, 0] < FARTHEST)
    if len(met):
        distances[met], rows[met] = merge_nearest([(before_distances[met], before_rows[met]), (distances[met], rows[met])], k)


def _probing(numbers: np.ndarray, span: Span) -> np.ndarray:
    """The descriptors with a nearest cell in ``span`` (``numbers``: their nearest cells), in
    the order of the first of them there."""
    first, end = span
    inside = (numbers >= first) & (numbers < end)
    probing = np.flatnonzero(inside.any(axis=1))
    first_inside = np.where(inside[probing], numbers[probing], NO_CELL).min(axis=1)
    return probing[np.argsort(first_inside, kind="stable")]


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
