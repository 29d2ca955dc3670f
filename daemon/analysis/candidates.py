"""Proposing candidate pairs generously and cheaply; verification decides.

- Hash neighbours: the DCT hash of each orientation of a query image against the stored
  (as displayed) hashes of all images, through multi-index hashing (daemon.analysis.neighbours).
  Catches copies changed in colour, light, size, format, clarity and orientation.
- Keypoint neighbours: ORB descriptors (of each image and of its mirror) against the stored
  descriptors of all images, through an inverted-file index (faiss, binary, range search);
  two images sharing ``MIN_VOTES`` close descriptors are proposed. Catches crops and
  overlaid text, which change the whole-frame hash too much.
"""

from __future__ import annotations

import faiss
import numpy as np

from daemon.analysis.neighbours import MultiIndexHash, best_pairs

HASH_RADIUS = 12  # bits of 64; every pair within 11 is guaranteed to be proposed
DESCRIPTOR_RADIUS = 32  # bits of 256 for two ORB descriptors to count as the same point
MIN_VOTES = 10  # close descriptors two images must share to be proposed
COMMON = 100  # a descriptor close to points in more images than this is a commonplace (flat patch, edge): ignored
MOST_PER_IMAGE = 24  # keypoint candidates kept per image, most votes first
IVF_ABOVE = 50_000  # descriptors; fewer are searched exhaustively


def hash_candidates(hashes: np.ndarray, query_rows: np.ndarray) -> list[tuple[int, int, int]]:
    """(query row, stored row, orientation) with ``orient(query, orientation)`` close to ``stored``."""
    index = MultiIndexHash(hashes[:, 0])
    matches = index.search(hashes[query_rows], HASH_RADIUS)
    first, second, orientation, _ = best_pairs(query_rows[matches.query], matches.stored, matches.orientation, matches.distance)
    return list(zip(first.tolist(), second.tolist(), orientation.tolist()))


def keypoint_candidates(stored: list[np.ndarray], queries: dict[int, list[np.ndarray]]) -> list[tuple[int, int]]:
    """(query row, stored row) pairs sharing at least ``MIN_VOTES`` close descriptors.

    ``stored[row]``: uint8[K, 32] descriptors of each image; ``queries[row]``: the descriptor
    sets to search with for that row (the image's own and its mirror's).
    """
    counts = np.array([len(d) for d in stored], dtype=np.int64)
    if counts.sum() == 0 or not queries:
        return []
    database = np.ascontiguousarray(np.concatenate([d for d in stored if len(d)]), dtype=np.uint8)
    owners = np.repeat(np.arange(len(stored)), counts)
    index = _descriptor_index(database)
    pairs: set[tuple[int, int]] = set()
    for row, sets in queries.items():
        for descriptors in sets:
            if len(descriptors) < MIN_VOTES:
                continue
            limits, _, found = index.range_search(np.ascontiguousarray(descriptors, dtype=np.uint8), DESCRIPTOR_RADIUS)
            if not len(found):
                continue
            # One vote per query descriptor per image, however many of its points are close.
            query_of = np.repeat(np.arange(len(descriptors)), np.diff(limits).astype(np.int64))
            images = owners[found]
            hits = np.unique(query_of * len(stored) + images)
            hit_query, hit_image = hits // len(stored), hits % len(stored)
            spread = np.bincount(hit_query, minlength=len(descriptors))
            votes = hit_image[spread[hit_query] <= COMMON]
            other, count = np.unique(votes, return_counts=True)
            keep = (count >= MIN_VOTES) & (other != row)
            other, count = other[keep], count[keep]
            for image in other[np.argsort(-count, kind="stable")][:MOST_PER_IMAGE].tolist():
                pairs.add((row, image))
    return sorted(pairs)


def _descriptor_index(database: np.ndarray):
    if len(database) <= IVF_ABOVE:
        index = faiss.IndexBinaryFlat(256)
    else:
        lists = int(min(65536, max(256, 4 * np.sqrt(len(database)))))
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, lists)
        sample = database[np.random.default_rng(0).choice(len(database), min(len(database), 64 * lists), replace=False)]
        index.train(sample)
        index.nprobe = 16
    index.add(database)
    return index


def propose(
    keys: list[str], hashes: np.ndarray, query_rows: np.ndarray, descriptors: list[np.ndarray] | None = None, mirrored: list[np.ndarray] | None = None
) -> list[tuple[str, str, int | None]]:
    """Candidate pairs (first key, second key, orientation hint or None) touching ``query_rows``.

    ``descriptors[row]`` / ``mirrored[row]``: ORB descriptors of each image and of its mirror.
    """
    proposals: dict[tuple[int, int], tuple[str, str, int | None]] = {}
    for first, second, orientation in hash_candidates(hashes, query_rows):
        pair = (min(first, second), max(first, second))
        proposals.setdefault(pair, (keys[first], keys[second], orientation))
    if descriptors is not None and mirrored is not None:
        queries = {int(row): [descriptors[row], mirrored[row]] for row in query_rows}
        for first, second in keypoint_candidates(descriptors, queries):
            pair = (min(first, second), max(first, second))
            proposals.setdefault(pair, (keys[first], keys[second], None))
    return [proposals[pair] for pair in sorted(proposals)]
