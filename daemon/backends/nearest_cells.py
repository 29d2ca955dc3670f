"""Each descriptor's nearest cells of a large keypoint base, found without comparing it with
every cell's centre.

A search of the kept base first finds each descriptor's ``nprobe`` nearest cells, then reads
their lists. A base has about 4 cells per square root of its points
(``candidates.list_count``), so comparing a descriptor with every centre grows with the
library as the lists do: at a million simulated pictures (23,701 cells) it cost 29.9 µs a
descriptor beside 71 µs for the lists it probes. A coarse level over the centres finds them
for less: the centres are grouped by k-means (about the square root of their number of
groups), and a descriptor is compared with the groups' centres and then with the centres of
its ``GROUPS_PROBED`` nearest groups alone: 7.6 µs, and 99.85 % of the close points the
exact cells give (``bench/README.md``, "Nearest cells through a coarse level").

Building the base files each of its points in its nearest cell the same way: at 300,000
camera photographs (27,709 cells, 48 million points) comparing each point with every centre
cost 27.7 µs, half of the build's CPU, against 5.7 µs through the groups, which find a cell
as near as the nearest for 99.5 % of the points.

Grouping the centres takes about half a second at that size, so only many descriptors
looked up in many cells pay for it (``grouping_pays``): a scan of a hundred new pictures
compares every centre, as before. The build, the segments and the parts of one scan look up
the cells of one base: its groups are made once (``KeypointStore`` keeps them).
"""

from __future__ import annotations

import faiss
import numpy as np

COARSE_ABOVE_CELLS = 8192  # cells (a base of 4.2 million points): fewer are compared with every descriptor
COARSE_ABOVE_LOOKUPS = 100_000  # descriptors to look up (searched or filed) that pay for the grouping
GROUPS_PROBED = 16
GROUPING_ROUNDS = 10


class NearestCells:
    """Finds descriptors' nearest cells of ``base``: through ``coarse`` (``coarse_level`` of its
    centres) where given, else by comparing each with every centre."""

    def __init__(self, base: faiss.IndexBinaryIVF, coarse: faiss.IndexBinaryIVF | None = None):
        self.quantizer, self.coarse = base.quantizer, coarse

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, cells) of each descriptor's ``k`` nearest cells, nearest first (cell -1: none)."""
        return (self.coarse if self.coarse is not None else self.quantizer).search(descriptors, k)

    def file(self, index: faiss.IndexBinaryIVF, points: np.ndarray) -> None:
        """Add ``points`` (uint8[n, 32]) to ``index``, an index over the same cells, each in
        its nearest cell as found here; numbered on from the points it holds."""
        if self.coarse is None or not len(points):
            index.add(points)  # faiss finds the cells: every centre compared
            return
        points = np.ascontiguousarray(points, dtype=np.uint8)
        cells = np.ascontiguousarray(self.coarse.search(points, 1)[1][:, 0])
        unfound = np.flatnonzero(cells < 0)  # groups probed that hold no centre: faiss would drop the point
        if len(unfound):
            cells[unfound] = index.quantizer.search(points[unfound], 1)[1][:, 0]
        index.add_core(len(points), faiss.swig_ptr(points), None, faiss.swig_ptr(cells))  # type: ignore[attr-defined]  # a SWIG method its stubs leave out


def grouping_pays(cells: int, lookups: float) -> bool:
    """Whether grouping ``cells`` cells pays for looking up the nearest cells of ``lookups`` descriptors."""
    return cells > COARSE_ABOVE_CELLS and lookups > COARSE_ABOVE_LOOKUPS


def coarse_level(centres: np.ndarray) -> faiss.IndexBinaryIVF:
    """An index of ``centres`` (uint8[cells, 32]; ids: their cell numbers) in k-means groups of
    them, searched in its ``GROUPS_PROBED`` nearest groups."""
    groups = max(1, round(float(np.sqrt(len(centres)))))
    quantizer = faiss.IndexBinaryFlat(256)
    level = faiss.IndexBinaryIVF(quantizer, 256, groups)
    level.referenced_quantizer = quantizer  # type: ignore[attr-defined]  # faiss does not own it: keep it alive with the level
    level.cp.niter = GROUPING_ROUNDS
    level.cp.min_points_per_centroid = 1  # every centre is a point of its own: no sample to warn about
    level.train(centres)
    level.add(centres)
    level.nprobe = GROUPS_PROBED
    return level
