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
FOUND_AT_ONCE = 4_000_000  # bucket entries a query batch may gather before it is split (about 100 MB)
# Queries probed at once: each probes 137 values of each of its 4 chunks in each of its 8
# orientations, and the probes' positions are held until the batch's matches are gathered
# (about 70 KB a query). 2,048 at once held 150 MB, and more while a crowded batch was halved.
QUERY_BATCH = 256


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
    crowded: np.ndarray | None = None  # ``nearest``: the queries found in a crowd (their ``crowd`` kept)


class MultiIndexHash:
    """A static index over ``hashes`` (uint64[N]) answering "which entries are within ``radius`` bits".

    Identical hashes (the copies of one picture, or a cluster of pictures a pixel apart) are
    one entry of its tables, so n copies make one bucket entry, not n, and a search finds
    them as one value; ``nearest`` then takes only the few of them it keeps.
    """

    def __init__(self, hashes: np.ndarray, chunk_radius: int = 2):
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.masks = _flip_masks(CHUNK_BITS, chunk_radius)
        self.chunk_radius = chunk_radius
        self.guaranteed_radius = CHUNKS * (chunk_radius + 1) - 1
        # The entries holding each value: by_value[value_start[v]:value_start[v + 1]]. One
        # stable sort of the hashes gives the values, each entry's value and the entries of
        # each value in entry order (a scan of new pictures builds this over every hash).
        self.by_value = np.argsort(self.hashes, kind="stable")
        ordered = self.hashes[self.by_value]
        starts_a_value = np.ones(len(ordered), dtype=bool)
        starts_a_value[1:] = ordered[1:] != ordered[:-1]
        self.values = ordered[starts_a_value]
        self.value_of = np.empty(len(ordered), dtype=np.int64)
        self.value_of[self.by_value] = np.cumsum(starts_a_value) - 1
        self.value_start = np.append(np.flatnonzero(starts_a_value), len(ordered))
        # Each chunk's table: the values in order of that chunk (``order``), and where each of
        # the 65,536 chunk values starts in it (``starts``, one more at the end): a probe's
        # bucket is two lookups, not two binary searches of every value (which were 2 % of a
        # first scan in a library of 16,000, and grow with the library). The chunks sort as
        # 16-bit numbers, which numpy sorts by radix: a sixth of the time of 64-bit ones.
        self.tables = []
        for chunk in range(CHUNKS):
            keys = self._chunk(self.values, chunk).astype(np.min_scalar_type((1 << CHUNK_BITS) - 1))
            order = np.argsort(keys, kind="stable")
            starts = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=1 << CHUNK_BITS))])
            self.tables.append((starts, order))

    @staticmethod
    def _chunk(hashes: np.ndarray, chunk: int) -> np.ndarray:
        return (hashes >> np.uint64(chunk * CHUNK_BITS)) & np.uint64((1 << CHUNK_BITS) - 1)

    def search(self, queries: np.ndarray, radius: int, batch: int = QUERY_BATCH) -> HashMatches:
        """Entries within ``radius`` bits of any orientation of each query (``queries``: uint64[M, K]).

        Every match within ``guaranteed_radius`` is found; farther ones up to ``radius`` are
        found when some chunk happens to be close enough. All of them: n identical entries
        give n matches a query (``nearest`` keeps a bounded number).
        """
        parts = list(self._value_matches(queries, radius, batch))
        if not parts:
            empty = np.zeros(0, np.int64)
            return HashMatches(empty, empty, empty, empty)
        query, value, orientation, distance = (np.concatenate(p) for p in zip(*parts, strict=True))
        sizes = self.value_start[value + 1] - self.value_start[value]
        positions = np.repeat(self.value_start[value], sizes) + _ranges(sizes)
        stored = self.by_value[positions]
        query, orientation, distance = (np.repeat(a, sizes) for a in (query, orientation, distance))
        order = np.lexsort((stored, orientation, query))
        return HashMatches(query[order], stored[order], orientation[order], distance[order])

    def nearest(
        self,
        queries: np.ndarray,
        rows: np.ndarray,
        radius: int,
        limit: int,
        age: np.ndarray | None = None,
        crowd: int | None = None,
        alike: int = 0,
        crowded: int = 0,
        batch: int = QUERY_BATCH,
    ) -> HashMatches:
        """For each query, the entries within ``radius`` bits of any of its orientations (as
        ``search`` finds them), at most ``limit`` of them, nearest first, then oldest first.

        ``rows[i]``: the entry query ``i`` is (never its own match); ``age[entry]``: when given,
        only entries older than the query's own count. Without it, ties go to the lowest entry.
        ``alike``: distances up to this many bits count as equally near.
        ``crowd``: where more than ``crowded`` entries are that near, only this many are kept.
        Matches are reduced per query batch by batch, so the work and memory grow with the
        queries times ``limit``, not with the size of a crowd of equal hashes.
        """
        rows = np.asarray(rows, dtype=np.int64)
        rank = np.arange(len(self.hashes), dtype=np.int64) if age is None else np.asarray(age, dtype=np.int64)
        # Each value's entries, oldest first, and a key to find how many are older than a query.
        entries = np.lexsort((rank, self.value_of))
        span = int(rank.max()) + 1 if len(rank) else 1
        keys = self.value_of[entries] * span + rank[entries]
        parts = []
        for query, value, orientation, distance in self._value_matches(queries, radius, batch):
            parts.append(
                self._keep_nearest(query, value, orientation, distance, rows, rank, entries, keys, span, limit, crowd, alike, crowded, age is None)
            )
        if not parts:
            empty = np.zeros(0, np.int64)
            return HashMatches(empty, empty, empty, empty, empty)
        return HashMatches(*(np.concatenate(p) for p in zip(*parts, strict=True)))

    def _keep_nearest(self, query, value, orientation, distance, rows, rank, entries, keys, span, limit, crowd, alike, crowded, any_age):
        # One hit per (query, value): its nearest orientation, the lowest on ties.
        order = np.lexsort((orientation, distance, value, query))
        query, value, orientation, distance = (a[order] for a in (query, value, orientation, distance))
        first = np.ones(len(query), bool)
        first[1:] = (query[1:] != query[:-1]) | (value[1:] != value[:-1])
        query, value, orientation, distance = (a[first] for a in (query, value, orientation, distance))
        own = rows[query]
        low = self.value_start[value]
        high = self.value_start[value + 1] if any_age else np.searchsorted(keys, value * span + rank[own], side="left")
        # Nearest values first: a value is looked into only while fewer than the query's limit
        # sit at smaller distances, and gives at most the missing number (its oldest).
        near = np.maximum(distance, alike)
        order = np.lexsort((value, near, query))
        query, value, orientation, distance, near, low, high = (a[order] for a in (query, value, orientation, distance, near, low, high))
        available = high - low
        new_query = np.ones(len(query), bool)
        new_query[1:] = query[1:] != query[:-1]
        new_level = new_query.copy()
        new_level[1:] |= near[1:] != near[:-1]
        total = np.cumsum(available)
        before = total - available  # entries in earlier hits, all queries
        query_start = np.maximum.accumulate(np.where(new_query, np.arange(len(query)), 0))
        level_start = np.maximum.accumulate(np.where(new_level, np.arange(len(query)), 0))
        closer = before[level_start] - before[query_start]  # entries of this query at smaller distances
        own_limit = np.full(len(query), limit, dtype=np.int64)
        crowded_queries = np.zeros(0, np.int64)
        if crowd is not None:
            # The nearest level of each query is its first: the entries within ``alike`` bits.
            starts = np.nonzero(new_query)[0]
            first_level_end = np.append(np.nonzero(new_level)[0], len(query))[np.searchsorted(np.nonzero(new_level)[0], starts, side="right")]
            alike_here = (total[first_level_end - 1] - before[starts]) * (near[starts] == alike) - int(any_age)
            own_limit[(alike_here > crowded)[np.cumsum(new_query) - 1]] = crowd
            crowded_queries = query[starts[alike_here > crowded]]
        missing = np.maximum(own_limit + int(any_age) - closer, 0)  # one more where the query itself may be among them
        take = np.minimum(available, missing)
        positions = np.repeat(low, take) + _ranges(take)
        stored = entries[positions]
        query, orientation, distance = (np.repeat(a, take) for a in (query, orientation, distance))
        keep = stored != rows[query]
        query, stored, orientation, distance = query[keep], stored[keep], orientation[keep], distance[keep]
        own_limit = np.repeat(own_limit, take)[keep]
        order = np.lexsort((rank[stored], np.maximum(distance, alike), query))
        query, stored, orientation, distance, own_limit = (a[order] for a in (query, stored, orientation, distance, own_limit))
        new_query = np.ones(len(query), bool)
        new_query[1:] = query[1:] != query[:-1]
        place = np.arange(len(query)) - np.maximum.accumulate(np.where(new_query, np.arange(len(query)), 0))
        keep = place < own_limit
        return query[keep], stored[keep], orientation[keep], distance[keep], crowded_queries

    def _value_matches(self, queries: np.ndarray, radius: int, batch: int):
        """(query, value, orientation, distance) of each query orientation and each value within
        ``radius`` bits of it, batch by batch."""
        queries = np.asarray(queries, dtype=np.uint64)
        if queries.ndim == 1:
            queries = queries[:, None]
        for start in range(0, len(queries), batch):
            yield from self._search_batch(queries[start : start + batch], start, radius)

    def _probe(self, flat: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query orientation, first position, entries) of each probe of ``chunk`` that finds
        values in its table: the probes that find none (most, in a small library) are not kept."""
        starts = self.tables[chunk][0]
        probes = (self._chunk(flat, chunk)[:, None] ^ self.masks[None, :]).reshape(-1).astype(np.int64)
        left = starts[probes]
        counts = starts[probes + 1] - left
        hit = np.flatnonzero(counts)
        return hit // len(self.masks), left[hit], counts[hit]

    def _search_batch(self, queries: np.ndarray, offset: int, radius: int):
        rows, kinds = queries.shape
        flat = queries.reshape(-1)  # row-major: index = row * kinds + orientation
        probed = [self._probe(flat, chunk) for chunk in range(CHUNKS)]
        if rows > 1 and sum(int(counts.sum()) for _, _, counts in probed) > FOUND_AT_ONCE:
            # Values crowd around these queries (many distinct hashes a few bits apart): halve
            # the batch, letting go of this one's probes first.
            del probed
            half = rows // 2
            yield from self._search_batch(queries[:half], offset, radius)
            yield from self._search_batch(queries[half:], offset + half, radius)
            return
        pairs_q: list[np.ndarray] = []
        pairs_s: list[np.ndarray] = []
        for (owner, left, counts), (_, order) in zip(probed, self.tables, strict=True):
            pairs_q.append(np.repeat(owner, counts))
            pairs_s.append(order[np.repeat(left, counts) + _ranges(counts)])
        owner = np.concatenate(pairs_q)
        if not len(owner):
            return
        value = np.concatenate(pairs_s).astype(np.int64)
        distance = np.bitwise_count(flat[owner] ^ self.values[value]).astype(np.int64)
        keep = distance <= radius
        owner, value, distance = owner[keep], value[keep], distance[keep]
        # The same (query orientation, value) is found through several chunks: keep one.
        key = np.unique(owner * len(self.values) + value, return_index=True)[1]
        owner, value, distance = owner[key], value[key], distance[key]
        yield owner // kinds + offset, value, owner % kinds, distance


def reachable(query: np.ndarray, stored: np.ndarray, radius: int, chunk_radius: int = 2) -> np.ndarray:
    """bool[len(stored)]: whether a ``MultiIndexHash`` search of ``query`` (uint64[K], its
    orientations) finds each hash of ``stored`` within ``radius`` bits: some orientation is
    that close, and agrees with it to within ``chunk_radius`` bits on some chunk."""
    difference = np.asarray(query, dtype=np.uint64).reshape(-1, 1) ^ np.asarray(stored, dtype=np.uint64).reshape(1, -1)
    close_chunk = np.zeros(difference.shape, bool)
    for chunk in range(CHUNKS):
        close_chunk |= np.bitwise_count(MultiIndexHash._chunk(difference, chunk)) <= chunk_radius
    return ((np.bitwise_count(difference) <= radius) & close_chunk).any(axis=0)


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c - 1 for each c of ``counts``, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


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
