"""Neighbour search over 64-bit hashes: multi-index hashing, in numpy, never all-pairs.

Each hash is cut into four 16-bit chunks. Two hashes within Hamming distance ``4 * (r + 1) - 1``
agree on at least one chunk to within ``r`` bits (pigeonhole), so probing each chunk's
sorted table with every value within ``r`` bits of the query's chunk finds all of them;
the full distance is then checked on the few entries found. With ``r = 2`` (137 probes per
chunk) every pair within 11 bits is found, in time that grows with the number of queries
times the (small) bucket sizes, not with the square of the collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

CHUNKS = 4
CHUNK_BITS = 16


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    masks = [0]
    for r in range(1, radius + 1):
        for positions in combinations(range(bits), r):
            masks.append(sum(1 << p for p in positions))
    return np.array(masks, dtype=np.uint64)


@dataclass(frozen=True)
class HashMatches:
    """Candidate pairs: query row ``query[i]`` in orientation ``orientation[i]`` is ``distance[i]`` bits from stored entry ``stored[i]``."""

    query: np.ndarray
    stored: np.ndarray
    orientation: np.ndarray
    distance: np.ndarray


class MultiIndexHash:
    """A static index over ``hashes`` (uint64[N]) answering "which entries are within ``radius`` bits"."""

    def __init__(self, hashes: np.ndarray, chunk_radius: int = 2):
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.masks = _flip_masks(CHUNK_BITS, chunk_radius)
        self.guaranteed_radius = CHUNKS * (chunk_radius + 1) - 1
        self.tables = []
        for chunk in range(CHUNKS):
            keys = self._chunk(self.hashes, chunk)
            order = np.argsort(keys, kind="stable")
            self.tables.append((keys[order], order))

    @staticmethod
    def _chunk(hashes: np.ndarray, chunk: int) -> np.ndarray:
        return (hashes >> np.uint64(chunk * CHUNK_BITS)) & np.uint64((1 << CHUNK_BITS) - 1)

    def search(self, queries: np.ndarray, radius: int, batch: int = 2048) -> HashMatches:
        """Entries within ``radius`` bits of any orientation of each query (``queries``: uint64[M, K]).

        Every match within ``guaranteed_radius`` is found; farther ones up to ``radius`` are
        found when some chunk happens to be close enough.
        """
        queries = np.asarray(queries, dtype=np.uint64)
        if queries.ndim == 1:
            queries = queries[:, None]
        found: list[tuple[np.ndarray, ...]] = []
        for start in range(0, len(queries), batch):
            found.append(self._search_batch(queries[start : start + batch], start, radius))
        if not found:
            empty = np.zeros(0, np.int64)
            return HashMatches(empty, empty, empty, empty)
        query, stored, orientation, distance = (np.concatenate(parts) for parts in zip(*found))
        return HashMatches(query, stored, orientation, distance)

    def _search_batch(self, queries: np.ndarray, offset: int, radius: int) -> tuple[np.ndarray, ...]:
        rows, kinds = queries.shape
        flat = queries.reshape(-1)  # row-major: index = row * kinds + orientation
        pairs_q: list[np.ndarray] = []
        pairs_s: list[np.ndarray] = []
        for chunk, (keys, order) in enumerate(self.tables):
            probes = (self._chunk(flat, chunk)[:, None] ^ self.masks[None, :]).reshape(-1)
            left = np.searchsorted(keys, probes, side="left")
            right = np.searchsorted(keys, probes, side="right")
            counts = right - left
            hit = counts > 0
            if not hit.any():
                continue
            left, counts = left[hit], counts[hit]
            probe_owner = (np.nonzero(hit)[0] // len(self.masks)).astype(np.int64)
            total = int(counts.sum())
            owner = np.repeat(probe_owner, counts)
            starts = np.repeat(left - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
            positions = starts + np.arange(total)
            pairs_q.append(owner)
            pairs_s.append(order[positions])
        if not pairs_q:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, empty
        owner = np.concatenate(pairs_q)
        stored = np.concatenate(pairs_s).astype(np.int64)
        distance = np.bitwise_count(flat[owner] ^ self.hashes[stored]).astype(np.int64)
        keep = distance <= radius
        owner, stored, distance = owner[keep], stored[keep], distance[keep]
        # The same (query orientation, entry) is found through several chunks: keep one.
        key = np.unique(owner * len(self.hashes) + stored, return_index=True)[1]
        owner, stored, distance = owner[key], stored[key], distance[key]
        return owner // kinds + offset, stored, owner % kinds, distance


def best_pairs(first: np.ndarray, second: np.ndarray, orientation: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, ...]:
    """One row per unordered pair (smallest distance kept), dropping self-pairs."""
    keep = first != second
    first, second, orientation, distance = first[keep], second[keep], orientation[keep], distance[keep]
    low, high = np.minimum(first, second), np.maximum(first, second)
    order = np.lexsort((distance, high, low))
    low, high, first, second, orientation, distance = (a[order] for a in (low, high, first, second, orientation, distance))
    unique = np.ones(len(low), bool)
    unique[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    return first[unique], second[unique], orientation[unique], distance[unique]
