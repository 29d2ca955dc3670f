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

Grouping the centres takes about half a second at that size, so only a search of many
descriptors in a base of many cells pays for it (``grouping_pays``): a scan of a hundred new
pictures compares every centre, as before. The parts of one scan search one base: its groups
are made once (``KeypointStore`` keeps them).
"""

from __future__ import annotations

import faiss
import numpy as np

COARSE_ABOVE_CELLS = 8192  # cells (a base of 4.2 million points): fewer are compared with every descriptor
COARSE_ABOVE_SEARCHED = 100_000  # query descriptors a search must be expected to have to pay for the grouping
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


def grouping_pays(base: faiss.IndexBinaryIVF, searched: float) -> bool:
    """Whether grouping the cells of ``base`` pays for a search of ``searched`` query descriptors."""
    return base.nlist > COARSE_ABOVE_CELLS and searched > COARSE_ABOVE_SEARCHED


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
