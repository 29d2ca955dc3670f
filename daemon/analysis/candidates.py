"""Proposing candidate pairs generously and cheaply; verification decides.

- Hash neighbours: the DCT hash of each orientation of a query image against the stored
  (as displayed) hashes of all images, through multi-index hashing (dupe_scanner.analysis.neighbours).
  Catches copies changed in colour, light, size, format, clarity and orientation. Every
  neighbour of a query is kept (up to ``HASH_NEIGHBOURS``), unless more than ``CROWDED``
  are near-identical: then it is in a crowd, and meets only its ``CROWD_NEIGHBOURS`` nearest.
  Those further than ``NEAR_BITS`` are asked ``FAR_BLOCK`` at a time, nearest first, each
  block only if the one before held a duplicate (``WaitingCandidates``).
- Keypoint neighbours: ORB descriptors (of each image and of its mirror) against the stored
  descriptors of all images, through an inverted-file index (faiss, binary, the ``COMMON``
  nearest points of each descriptor); two images sharing ``MIN_VOTES`` close descriptors are
  proposed. A point many unrelated pictures hold (a texture, a pattern) is commonplace and
  votes only for what it nearly equals (``FAMILY_SHARE``). Catches crops and
  overlaid text, which change the whole-frame hash too much. Asked ``KEYPOINT_BLOCK`` at a
  time, most votes first, on the same evidence as the far hash neighbours.

Each query's nearest older hash neighbour within ``ALIKE_BITS`` is its twin candidate
(``twin_candidates``), asked before the rest: a twin's verdicts stand for the query's
(``analysis.twins``).

Each pair is asked from one side only: its newer picture's search, among the pictures that
came before it (``age``). Every search keeps a bounded number of keypoint candidates, so
which side asks matters. Asked from the newer side, the hash's candidates are the same
whether the whole library is scanned at once or each picture was scanned as it arrived; the
keypoints' are not: a whole library's search finds each descriptor's nearest points among
every picture, newer ones too, before it keeps the older ones', so it proposes fewer (73,010
against 135,206 in the labelled set: bench/README.md, "Tried and not kept: a full comparison
reading only older pictures' points").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import faiss
import numpy as np

from dupe_scanner.analysis.cell_order import FARTHEST, Cells, Found, Span, search_together, within
from dupe_scanner.analysis.neighbours import MultiIndexHash, best_pairs, reachable

HASH_RADIUS = 12  # bits of 64; every pair within 11 is guaranteed to be proposed
# Hash neighbours of a query, nearest first (distances up to ALIKE_BITS counting as equal),
# then oldest first: all of them up to HASH_NEIGHBOURS. A family of copies of one picture
# keeps every pair: on the labelled set a query has at most 139 older ones within reach (the
# three look-alike portrait cuts of sway's blue wallpaper, three families together; one
# family is at most 57 pictures), of them at most 40 within ALIKE_BITS. More than CROWDED
# within ALIKE_BITS is a crowd (thousands of pictures a pixel apart, the frames of a still
# scene), not a family: its every picture then meets only its CROWD_NEIGHBOURS nearest
# older ones, the oldest first. So a crowd of n costs about 3 n verified pairs (plus the
# first CROWDED pictures' n^2 / 2), not n^2 / 2 (nor 64 n: at some 25 ms a near-identical
# pair, that is hours for 20,000), and all of its pictures meet its first few: one star,
# which grouping makes one group. Keypoint candidates within the hash's reach are left to
# the hash (``keypoint_candidates``), or they would fill a crowd's places again.
HASH_NEIGHBOURS = 256
# Beyond NEAR_BITS, hash neighbours are asked for as the evidence comes: a query's nearest
# FAR_BLOCK at once, and each further block only when the block before held a verified pair
# (a family of copies, whose edits lie far apart, goes on; among strangers the asking stops).
# Smooth pictures' hashes crowd together: in the bench/scale library of 16,000 tiles a tenth
# of the pictures have 161 or more hash neighbours, and smooth pairs only the hash relates, 5
# to 20 bits apart, took 56 % of a first scan's verification for 3 copies in 1,758 pairs.
# There this holds back half of the hash candidates (110,974 of 222,044), 31 % of the
# verification CPU, and of the verified pairs no planted copy's, 276 joining two families
# (``bench.far_neighbours``). Chosen on the labelled set's tune split: with blocks of 16 no
# verified pair is held back, at 2, 4 or 6 near bits; blocks of 8 hold back 19. 4 bits, not
# 2: a pair that near is worth its verification whatever else the query met.
NEAR_BITS = 4
FAR_BLOCK = 16
ALIKE_BITS = 2  # bits of 64: as near as makes no difference between two hashes
CROWDED = 128
CROWD_NEIGHBOURS = 3  # not 1: a first picture that fails verification does not split the crowd
DESCRIPTOR_RADIUS = 32  # bits of 256 for two ORB descriptors to count as the same point
MIN_VOTES = 5  # close descriptors two images must share to be proposed
# A descriptor close to this many stored points or more is a commonplace (flat patch, edge)
# and ignored. Not fewer: the copies of one picture (dozens, for a popular one) all hold it.
COMMON = 256
# ...except for the points it nearly equals: the copies of one picture hold the same point
# almost exactly (a popular picture's copies outnumber COMMON), a flat patch merely resembles.
NEAR = 6  # bits of 256
# A crowded descriptor (close to all of its FIRST_LOOK nearest points) is one of two things: a
# point the copies of one picture all hold, or a commonplace (sky, a corner of a grid, a
# texture) that unrelated pictures share. Copies of one picture have hashes close to each
# other's, so the owners of the FIRST_LOOK points tell them apart: where at least this share
# of them lie within HASH_RADIUS of one owner's hash, they are a family, and the descriptor
# is looked up COMMON deep for all of the family's points (a crop of a popular picture needs
# them). Otherwise it is a commonplace at once, without the deep lookup (two thirds of the
# search in a library of 16,000 tiles), and votes only for points it nearly equals. 0.3,
# chosen on the labelled set's tune split: recall 0.9695, against 0.9684 at 0.5 and 0.9700
# with every crowded descriptor looked up deep.
FAMILY_SHARE = 0.3
# Keypoint candidates kept per image, most votes first (hash neighbours not counted). 40, not
# the 32 of when both sides of a pair searched: asked from its newer side only, 40 places
# cover the labelled tune split's positives as 32 did from both sides, with 2.5 % fewer candidates.
MOST_PER_IMAGE = 40
# Keypoint candidates are asked as the evidence comes too, KEYPOINT_BLOCK at a time, most votes
# first: a block's pairs share the far hash neighbours' block number, and a query's next block
# of either kind is asked when its block before, of either kind, held a verified pair. A crop's
# original holds most of its points and comes first; strangers sharing a texture or a pattern
# vote for each other a little, many at a time. In the bench/scale library of 16,000 tiles this
# holds back 72 % of the keypoint candidates (32,326 of 44,887), a quarter of the verification
# CPU, and of the verified pairs one planted copy's (91 joining two families). Chosen on the
# labelled set's tune split (``bench.keypoint_blocks``): blocks of 4, 8 or 16 hold back none of
# its verified (original, copy) pairs, blocks of 2 hold back 16.
KEYPOINT_BLOCK = 4
IVF_ABOVE = 50_000  # descriptors; fewer are searched exhaustively
FIRST_LOOK = 32  # nearest points looked up first; a descriptor with that many close ones is looked up COMMON deep
QUERY_BATCH = 64  # descriptor sets whose votes are counted at once (results: 64 x 160 x COMMON points)
# Descriptors looked up FIRST_LOOK deep together, in the order of their nearest cells
# (``cell_order``): 512 camera photographs' own and mirrored points, their results 39 MB.
SEARCHED_TOGETHER = 163_840


# (database, lists wanted) -> the cell centres to use; ``train_partition`` unless a kept one fits.
Partition = Callable[[np.ndarray, int], np.ndarray]


def hash_candidates(hashes: np.ndarray, query_rows: np.ndarray, age: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """(query row, stored row, orientation) with ``orient(query, orientation)`` close to ``stored``,
    and ``stored`` older than ``query`` where ``age`` is given: every one of each query, or in a
    crowd its ``CROWD_NEIGHBOURS`` nearest (see ``HASH_NEIGHBOURS``)."""
    return hash_search(hashes, query_rows, age)[0]


def hash_search(hashes: np.ndarray, query_rows: np.ndarray, age: np.ndarray | None = None) -> tuple[list[tuple[int, int, int]], set[int]]:
    """``hash_candidates``, and the query rows found in a crowd."""
    found, crowded = _hash_search(hashes, query_rows, age)
    return [(first, second, orientation) for first, second, orientation, _ in found.tolist()], crowded


def _hash_search(hashes: np.ndarray, query_rows: np.ndarray, age: np.ndarray | None) -> tuple[np.ndarray, set[int]]:
    """int64[n, 4]: (query row, stored row, orientation, bits apart) of ``hash_candidates``; and the query rows in a crowd."""
    index = MultiIndexHash(hashes[:, 0])
    matches = index.nearest(hashes[query_rows], query_rows, HASH_RADIUS, HASH_NEIGHBOURS, age, CROWD_NEIGHBOURS, ALIKE_BITS, CROWDED)
    query, stored, orientation, distance = query_rows[matches.query], matches.stored, matches.orientation, matches.distance
    found = np.stack(best_pairs(query, stored, orientation, distance), axis=1).astype(np.int64).reshape(-1, 4)
    return found, set(query_rows[matches.crowded].tolist())


class PointIndex(Protocol):
    """Stored descriptors, searchable by Hamming distance; each point belongs to an image row."""

    points: int  # how many points it holds

    def search(self, descriptors: np.ndarray, k: int, cells: Cells | None = None, span: Span | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The distances and image rows of the ``k`` nearest points of each descriptor,
        nearest first; row -1 where there is no point (or it belongs to no current image).
        ``cells``: the descriptors' ``cells_of``, where already found. ``span``: one of
        ``spans``, to search only the points in its cells, and give nothing back."""

    def cells_of(self, descriptors: np.ndarray) -> Cells | None:
        """Each descriptor's nearest cells, as ``search`` probes them; None for an index without cells."""

    def spans(self) -> list[Span]:
        """The spans of cells a search of many descriptors walks one after the other, giving
        back the memory of each after it (``release``): one span of every cell where the
        points are held whole, none where they have no cells."""

    def release(self, span: Span) -> None:
        """Give back the memory the points of ``span`` took while it was searched."""


# Points a bucket of ``PointOwners``' table: about half an image's, so a point's image is its
# bucket's first image or one of the next few.
OWNER_BUCKET_SHIFT = 5


class PointOwners:
    """The image row of each point of an index filled image by image (point ids in that order),
    told from how many points each image has: a number a picture, not one a point (which
    took as much memory as a fifth of the index itself).

    A point's image is looked up from its bucket's first image (a table of one int32 a
    ``2 ** OWNER_BUCKET_SHIFT`` points, a 256th of the index's own memory), stepping on while
    that image ends before the point. A binary search of every image's end for each of the 32
    to 256 points found for every descriptor was 2 % of a first scan in a library of 16,000,
    and grows with the library; the table takes a quarter of its time at 16,000 images and a
    sixth at a million (``bench/README.md``, "The points' owners by table")."""

    def __init__(self, rows: np.ndarray, counts: np.ndarray):
        """``rows[i]``: the image row of the i-th image added (-1: none now); ``counts[i]``: its points."""
        added = np.asarray(counts) > 0
        self.rows = np.asarray(rows, dtype=np.int64)[added]
        self.ends = np.cumsum(np.asarray(counts, dtype=np.int64)[added])  # one past each image's last point
        points = int(self.ends[-1]) if len(self.ends) else 0
        bucket_starts = np.arange(0, points, 1 << OWNER_BUCKET_SHIFT, dtype=np.int64)
        self.first_image = np.searchsorted(self.ends, bucket_starts, side="right").astype(np.int32)

    def of(self, ids: np.ndarray) -> np.ndarray:
        """The image row of each point id (-1 for -1, faiss's "no point")."""
        if not len(self.rows):
            return np.full(ids.shape, -1, dtype=np.int64)
        points = np.minimum(np.maximum(ids, 0), self.ends[-1] - 1).ravel()
        image = self.first_image[points >> OWNER_BUCKET_SHIFT].astype(np.int64)
        behind = np.flatnonzero(self.ends[image] <= points)
        while len(behind):  # the last image ends past every point: this stops
            image[behind] += 1
            behind = behind[self.ends[image[behind]] <= points[behind]]
        return np.where(ids >= 0, self.rows[image].reshape(ids.shape), -1)


class PointsInMemory:
    """A ``PointIndex`` over descriptors held in memory: exhaustive up to ``IVF_ABOVE`` points,
    an inverted-file index beyond."""

    def __init__(self, index, owners: PointOwners):
        self.index, self.owners = index, owners
        self.points = int(index.ntotal)

    @classmethod
    def of(cls, stored: list[np.ndarray], partition: Partition | None = None) -> PointsInMemory:
        """``stored[row]``: uint8[K, 32] descriptors of each image row."""
        counts = np.array([len(d) for d in stored], dtype=np.int64)
        database = np.ascontiguousarray(np.concatenate([d for d in stored if len(d)] or [np.zeros((0, 32), np.uint8)]), dtype=np.uint8)
        return cls(descriptor_index(database, partition or train_partition), PointOwners(np.arange(len(stored)), counts))

    def search(self, descriptors: np.ndarray, k: int, cells: Cells | None = None, span: Span | None = None) -> tuple[np.ndarray, np.ndarray]:
        if cells is None and span is None:
            distances, ids = self.index.search(descriptors, k)
        else:
            nearest = cells if cells is not None else self.cells_of(descriptors)
            assert nearest is not None, "a span of an index without cells"
            cell_distances, cell_numbers = nearest if span is None else within(nearest, span)
            distances, ids = self.index.search_preassigned(descriptors, k, cell_numbers, cell_distances)
        return distances, self.owners.of(ids)

    def spans(self) -> list[Span]:
        return [(0, int(self.index.nlist))] if isinstance(self.index, faiss.IndexBinaryIVF) else []

    def release(self, span: Span) -> None:
        """Nothing: the points are held in memory until the index is let go."""

    def cells_of(self, descriptors: np.ndarray) -> Cells | None:
        if not isinstance(self.index, faiss.IndexBinaryIVF):
            return None
        return self.index.quantizer.search(descriptors, self.index.nprobe)


def keypoint_candidates(
    points: PointIndex,
    image_count: int,
    queries: dict[int, list[np.ndarray]],
    proposed: Partners | None = None,
    threads: int = 1,
    age: np.ndarray | None = None,
    hashes: np.ndarray | None = None,
) -> np.ndarray:
    """int64[n, 3]: (query row, stored row, rank) of the pairs sharing at least ``MIN_VOTES``
    close descriptors, sorted by pair; ``rank``: the stored row's place among the query's
    candidates, most votes first (0 the most; the better of its places when both of the
    query's descriptor sets found it).

    ``points``: the stored descriptors of ``image_count`` image rows; ``queries[row]``: the
    descriptor sets to search with for that row (the image's own and its mirror's).
    ``proposed.of(row)``: rows already proposed with it (by the hash); they do not take up its
    ``MOST_PER_IMAGE`` places, which go to what only keypoints find: crops and overlays. A
    picture with many whole-frame copies would otherwise fill its places with them.
    ``age[row]``: when given, a query row is paired only with older rows, and its places go
    to them alone.
    ``hashes``: every row's hashes (uint64[N, 8]); when given, rows the hash search of a query
    row reaches are the hash's to propose or leave out (``HASH_NEIGHBOURS``), never the
    keypoints': in a crowd of near-identical pictures they would fill every place. They also
    tell a family's crowded points from commonplace ones (``FAMILY_SHARE``).
    """
    none = np.zeros(0, dtype=np.int64)
    if not points.points or not queries:
        return np.zeros((0, 3), dtype=np.int64)
    searches = [(row, descriptors) for row, sets in queries.items() for descriptors in sets if len(descriptors) >= MIN_VOTES]
    rank_of: dict[tuple[int, int], int] = {}
    neighbours = min(COMMON, points.points)

    def search(batch: list[tuple[int, np.ndarray]], first_looks: Found, offset: int) -> list[tuple[int, int, int]]:
        """``offset``: where the batch's descriptors start among ``first_looks``'."""
        sizes = np.array([len(descriptors) for _, descriptors in batch], dtype=np.int64)
        descriptors = _stacked_sets(batch)
        first_look = first_looks.of(offset, offset + len(descriptors))
        distances, rows, commonplace = _nearest(points, descriptors, neighbours, hashes, first_look)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        found: list[tuple[int, int, int]] = []
        for (row, _), start, end in zip(batch, starts[:-1], starts[1:], strict=True):
            already = proposed.of(row) if proposed else none
            voted = _most_voted(row, distances[start:end], rows[start:end], commonplace[start:end], image_count, already, age, hashes)
            found.extend((row, image, rank) for rank, image in enumerate(voted))
        return found

    # Batches go to plain threads, each running faiss on one core: faiss releases the GIL,
    # and its own OpenMP threads spin at every barrier, which on a busy two-core machine
    # (the service indexing beside the scan) made searches several times slower.
    with ThreadPoolExecutor(max_workers=max(1, threads), initializer=faiss.omp_set_num_threads, initargs=(1,)) as pool:
        for group in _groups(searches, SEARCHED_TOGETHER):
            first_looks = search_together(points, _stacked_sets(group), min(FIRST_LOOK, neighbours), pool)
            batches = list(_batches(group, QUERY_BATCH))
            offsets = np.cumsum([0] + [sum(len(descriptors) for _, descriptors in batch) for batch in batches]).tolist()
            for found in pool.map(search, batches, [first_looks] * len(batches), offsets):
                for row, image, rank in found:
                    rank_of[row, image] = min(rank, rank_of.get((row, image), rank))
            del first_looks  # before the next group's are searched
    return np.array(sorted((row, image, rank) for (row, image), rank in rank_of.items()), dtype=np.int64).reshape(-1, 3)


def pairs_of(ranked: np.ndarray) -> list[tuple[int, int]]:
    """(query row, stored row) of each of ``keypoint_candidates``' rows, without the ranks."""
    return [(query, stored) for query, stored, _ in ranked.tolist()]


def _nearest(
    points: PointIndex,
    descriptors: np.ndarray,
    neighbours: int,
    hashes: np.ndarray | None = None,
    first_look: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``neighbours`` nearest stored points of each descriptor, as ``points.search`` gives
    them, and which descriptors are commonplace (bool[n]). ``first_look``: the descriptors'
    ``min(FIRST_LOOK, neighbours)`` nearest points, where already searched.

    Most descriptors have only a few close points: they are looked up ``FIRST_LOOK`` deep,
    several times cheaper than ``COMMON`` deep. Only those whose ``FIRST_LOOK``-th point is
    still close (a crowded descriptor: a popular picture's copies, a flat patch) may need
    more. With ``hashes`` (every row's, uint64[N, 8]), a crowded descriptor whose owners are
    not one family is commonplace at once (``FAMILY_SHARE``); the others, and every crowded
    one without ``hashes``, are looked up again in full, and are commonplace when even
    their ``COMMON``-th point is close. The columns past ``FIRST_LOOK`` of a descriptor not
    looked up again are padding (no point, far): every close point it votes with is there.
    Those ``COMMON`` columns are kept small (a distance to a byte, 255 for 255 bits or more;
    a row to 4): 13 MB for 64 camera photographs' own and mirrored points, not 31.
    """
    judged = neighbours >= COMMON  # fewer points than COMMON: nothing is commonplace
    if neighbours <= FIRST_LOOK:
        distances, rows = first_look if first_look is not None else points.search(descriptors, neighbours)
        return distances, rows, np.zeros(len(descriptors), dtype=bool)
    near_distances, near_rows = first_look if first_look is not None else points.search(descriptors, FIRST_LOOK)
    distances = np.full((len(descriptors), neighbours), FARTHEST, dtype=np.uint8)
    rows = np.full((len(descriptors), neighbours), -1, dtype=np.int32)
    distances[:, :FIRST_LOOK], rows[:, :FIRST_LOOK] = np.minimum(near_distances, FARTHEST), near_rows
    commonplace = np.zeros(len(descriptors), dtype=bool)
    crowded = np.flatnonzero((near_distances[:, -1] < DESCRIPTOR_RADIUS) & (near_rows[:, -1] >= 0))
    if judged and hashes is not None and len(crowded):
        family = _one_family(near_rows[crowded], hashes[:, 0])
        commonplace[crowded[~family]] = True
        crowded = crowded[family]
    if len(crowded):
        deep_distances, deep_rows = points.search(np.ascontiguousarray(descriptors[crowded]), neighbours)
        distances[crowded], rows[crowded] = np.minimum(deep_distances, FARTHEST), deep_rows
        if judged:
            commonplace[crowded] = (distances[crowded, -1] < DESCRIPTOR_RADIUS) & (rows[crowded, -1] >= 0)
    return distances, rows, commonplace


def _one_family(owners: np.ndarray, hashes: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """bool[n]: whether at least ``FAMILY_SHARE`` of each line of ``owners`` (image rows, -1
    for none) have hashes (``hashes[row]``: as displayed) within ``HASH_RADIUS`` of one of
    them. In chunks: all pairs of 32 owners are a thousand hash distances a line."""
    family = np.zeros(len(owners), dtype=bool)
    for start in range(0, len(owners), chunk):
        lines = owners[start : start + chunk]
        known = lines >= 0
        owner_hashes = hashes[np.maximum(lines, 0)]
        near = np.bitwise_count(owner_hashes[:, :, None] ^ owner_hashes[:, None, :]) <= HASH_RADIUS
        near &= known[:, :, None] & known[:, None, :]
        family[start : start + chunk] = near.sum(axis=2).max(axis=1) >= FAMILY_SHARE * lines.shape[1]
    return family


def _most_voted(
    row: int,
    distances: np.ndarray,
    rows: np.ndarray,
    commonplace: np.ndarray,
    image_count: int,
    already: np.ndarray,
    age: np.ndarray | None = None,
    hashes: np.ndarray | None = None,
) -> list[int]:
    """The images most of ``row``'s descriptors are close to (``rows``, ``distances``: the
    images and distances of the nearest stored points of each descriptor, one line per
    descriptor), among those older than ``row`` where ``age`` is given, and out of reach of
    its hash search where ``hashes`` are. A ``commonplace`` descriptor votes only for the
    points it nearly equals."""
    close = (distances < DESCRIPTOR_RADIUS) & (rows >= 0)
    close &= ~commonplace[:, None] | (distances <= NEAR)
    query_of = np.nonzero(close)[0]
    if not len(query_of):
        return []
    # One vote per query descriptor per image, however many of its points are close.
    votes = np.unique(query_of * image_count + rows[close]) % image_count
    other, count = np.unique(votes, return_counts=True)
    keep = (count >= MIN_VOTES) & (other != row) & ~np.isin(other, already)
    if age is not None:
        keep &= age[other] < age[row]
    if hashes is not None and keep.any():
        keep[keep] = ~reachable(hashes[row], hashes[other[keep], 0], HASH_RADIUS)
    other, count = other[keep], count[keep]
    return other[np.argsort(-count, kind="stable")][:MOST_PER_IMAGE].tolist()


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _groups(searches: list[tuple[int, np.ndarray]], descriptors: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    """``searches`` in runs of whole descriptor sets of at most ``descriptors`` descriptors (or one set)."""
    group: list[tuple[int, np.ndarray]] = []
    held = 0
    for search in searches:
        if group and held + len(search[1]) > descriptors:
            yield group
            group, held = [], 0
        group.append(search)
        held += len(search[1])
    if group:
        yield group


def _stacked_sets(searches: list[tuple[int, np.ndarray]]) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([descriptors for _, descriptors in searches]), dtype=np.uint8)


def list_count(descriptors: int) -> int:
    """Inverted lists for an index of ``descriptors`` points: about 4 per square root."""
    return int(min(65536, max(256, 4 * np.sqrt(descriptors))))


# Training the cells: 40 descriptors a cell, 5 rounds, each descriptor's nearest centre found
# through an HNSW graph of 16 neighbours a node rather than against every centre. On the
# labelled set's 629,655 descriptors (3,174 cells) 10 rounds through a graph of 32 trained in
# 64 s against 784 s for faiss's defaults (64 a cell, 25 rounds, exhaustive), and the index
# then found 95.15 % of the close points an exhaustive search finds, against 95.23 %. The
# cost grows with the square of the cells, so at 100,000 pictures the defaults took most of
# an hour. Even so, training was a sixth to a quarter of a first scan's CPU in libraries of
# 2,000 to 4,000 pictures (bench/README.md, "Training the keypoint base's cells"): 5 rounds through a
# graph of 16 take a third of that, and the index finds 0.1 to 0.3 % fewer close points.
TRAINING_PER_CELL = 40
TRAINING_ROUNDS = 5
TRAINING_GRAPH_NEIGHBOURS = 16


def train_partition(database: np.ndarray, lists: int) -> np.ndarray:
    """uint8[lists, 32]: the centres of ``lists`` cells of descriptor space, by k-means on a sample."""
    index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, lists)
    index.cp.niter = TRAINING_ROUNDS
    index.clustering_index = faiss.IndexHNSWFlat(256, TRAINING_GRAPH_NEIGHBOURS)
    sample = database[np.random.default_rng(0).choice(len(database), min(len(database), TRAINING_PER_CELL * lists), replace=False)]
    index.train(sample)
    return index.quantizer.reconstruct_n(0, lists).reshape(lists, 32).astype(np.uint8)


def searched_exhaustively(points: int) -> bool:
    """Whether an index of ``points`` points is searched exhaustively (else by inverted lists)."""
    return points <= IVF_ABOVE


def descriptor_index(database: np.ndarray, partition: Partition = train_partition):
    """A faiss index over ``database``: exhaustive up to ``IVF_ABOVE`` points, inverted lists in ``partition``'s cells beyond."""
    index = empty_descriptor_index(len(database), lambda lists: partition(database, lists))
    index.add(database)
    return index


def empty_descriptor_index(points: int, cells: Callable[[int], np.ndarray]):
    """An empty faiss index suited to about ``points`` points: exhaustive up to ``IVF_ABOVE``,
    beyond that inverted lists in the cells ``cells(lists)`` gives (uint8[lists, 32])."""
    if searched_exhaustively(points):
        return faiss.IndexBinaryFlat(256)
    return inverted_lists_in(cells(list_count(points)))


def inverted_lists_in(cells: np.ndarray) -> faiss.IndexBinaryIVF:
    """An empty inverted-file index over the cells of these centres (uint8[lists, 32])."""
    centres = np.ascontiguousarray(cells, dtype=np.uint8)
    quantizer = faiss.IndexBinaryFlat(256)
    quantizer.add(centres)
    index = faiss.IndexBinaryIVF(quantizer, 256, len(centres))
    index.is_trained = True
    index.referenced_quantizer = quantizer  # type: ignore[attr-defined]  # faiss does not own it: keep it alive with the index
    index.nprobe = 16
    return index


# Query rows whose descriptors are loaded and searched at once: a full scan reads each
# picture's (10 KB with its mirror's) a chunk at a time, not the whole library's together.
QUERY_CHUNK = 2_000
NO_ORIENTATION = -1  # a keypoint candidate's orientation hint: none


class Partners:
    """Each row's partners in a list of pairs, as slices of one array: a first scan's hash
    proposes tens of pairs a picture, and a set of them for every picture took about 2 KB a
    picture, 2 GB at a million."""

    def __init__(self, pairs: np.ndarray, image_count: int):
        """``pairs``: int[n, 2] rows, each pair once (either way round)."""
        ends = np.concatenate([pairs[:, 0], pairs[:, 1]])
        order = np.argsort(ends, kind="stable")
        self.partners = np.concatenate([pairs[:, 1], pairs[:, 0]])[order]
        self.starts = np.searchsorted(ends[order], np.arange(image_count + 1))

    def of(self, row: int) -> np.ndarray:
        return self.partners[self.starts[row] : self.starts[row + 1]]


class Candidates:
    """Candidate pairs as rows of the key list: (first, second, orientation hint or
    ``NO_ORIENTATION``), one row per pair, sorted by pair. 24 bytes a pair: a first scan
    verifies tens a picture. ``waiting``: the candidates held back, asked block by block
    as the evidence warrants (``FAR_BLOCK``, ``KEYPOINT_BLOCK``). ``twins``: the rows of
    those that are a query's twin candidate (``twin_candidates``), asked first."""

    def __init__(self, rows: np.ndarray, waiting: WaitingCandidates | None = None, twins: np.ndarray | None = None):
        self.rows = rows
        self.waiting = waiting if waiting is not None else WaitingCandidates.none(len(rows))
        self.twins = twins if twins is not None else np.zeros((0, 3), np.int64)

    @classmethod
    def of(cls, proposed: np.ndarray, image_count: int, waiting: WaitingCandidates | None = None, twins: np.ndarray | None = None) -> Candidates:
        """One row per pair of ``proposed`` (first, second, orientation), its first proposal kept."""
        low, high = np.minimum(proposed[:, 0], proposed[:, 1]), np.maximum(proposed[:, 0], proposed[:, 1])
        _, first_proposal = np.unique(low * image_count + high, return_index=True)
        return cls(proposed[first_proposal], waiting, twins)

    def __len__(self) -> int:
        return len(self.rows)

    def batches(self, keys: Sequence[str], size: int) -> Iterator[list[tuple[str, str, int | None]]]:
        """(first key, second key, orientation hint or None), ``size`` pairs at a time."""
        for start in range(0, len(self.rows), size):
            yield [
                (keys[first], keys[second], None if orientation == NO_ORIENTATION else orientation)
                for first, second, orientation in self.rows[start : start + size].tolist()
            ]


class WaitingCandidates:
    """The candidates asked as the evidence comes, in numbered blocks: a query's hash
    neighbours further than ``NEAR_BITS``, ``FAR_BLOCK`` a block, nearest first, and its
    keypoint candidates, ``KEYPOINT_BLOCK`` a block, most votes first. Block 0 is asked with
    the other candidates, block n + 1 of a query only when its block n held a verified pair
    (``earned``). int64 rows (query, stored, orientation, block), 32 bytes a pair."""

    def __init__(self, rows: np.ndarray, image_count: int):
        self.rows, self.image_count = rows, image_count

    @classmethod
    def none(cls, image_count: int) -> WaitingCandidates:
        return cls(np.zeros((0, 4), np.int64), image_count)

    @classmethod
    def of(
        cls,
        hashed: np.ndarray,
        image_count: int,
        age: np.ndarray | None,
        near_bits: int | None = None,
        block: int | None = None,
        ranked: np.ndarray | None = None,
        keypoint_block: int | None = None,
    ) -> WaitingCandidates:
        """The neighbours of ``hashed`` (``_hash_search``'s rows) further than ``near_bits``
        (``NEAR_BITS``), in blocks of ``block`` (``FAR_BLOCK``): nearest first, then oldest
        first, as the hash search ranks them; and the keypoint candidates ``ranked``
        (``keypoint_candidates``' rows), in blocks of ``keypoint_block`` (``KEYPOINT_BLOCK``)."""
        near_bits = NEAR_BITS if near_bits is None else near_bits
        far = hashed[hashed[:, 3] > near_bits]
        rank = far[:, 1] if age is None else age[far[:, 1]]
        far = far[np.lexsort((rank, far[:, 3], far[:, 0]))]
        starts = np.flatnonzero(np.r_[True, far[1:, 0] != far[:-1, 0]]) if len(far) else np.zeros(0, np.int64)
        place = np.arange(len(far)) - np.repeat(starts, np.diff(np.r_[starts, len(far)]))
        far_rows = np.column_stack([far[:, :3], place // (block or FAR_BLOCK)]).astype(np.int64).reshape(-1, 4)
        if ranked is None or not len(ranked):
            return cls(far_rows, image_count)
        keypoint_blocks = ranked[:, 2] // (keypoint_block or KEYPOINT_BLOCK)
        keypoint_rows = np.column_stack([ranked[:, :2], np.full(len(ranked), NO_ORIENTATION), keypoint_blocks]).astype(np.int64)
        return cls(np.concatenate([far_rows, keypoint_rows]), image_count)

    def __len__(self) -> int:
        return len(self.rows)

    def held_back(self) -> np.ndarray:
        """bool[len(self)]: the rows not asked with the other candidates."""
        return self.rows[:, 3] > 0

    def of_block(self, block: int, keys: Sequence[str]) -> dict[tuple[str, str], int]:
        """The query row of each pair of ``block``, by its two keys in ``ScoredPair`` order."""
        rows = self.rows[self.rows[:, 3] == block]
        return {(min(keys[q], keys[s]), max(keys[q], keys[s])): q for q, s in rows[:, :2].tolist()}

    def earned(self, block: int, queries: Collection[int]) -> Candidates:
        """Block ``block`` of these queries: those whose block before held a verified pair."""
        rows = self.rows[(self.rows[:, 3] == block) & np.isin(self.rows[:, 0], np.fromiter(queries, np.int64, len(queries)))]
        return Candidates.of(rows[:, :3], self.image_count)


def propose(
    keys: Sequence[str],
    hashes: np.ndarray,
    query_rows: np.ndarray,
    points: PointIndex | None = None,
    descriptors_of: Callable[[list[int]], dict[int, list[np.ndarray]]] | None = None,
    threads: int = 1,
    age: np.ndarray | None = None,
) -> Candidates:
    """Candidate pairs touching ``query_rows``; the hash's orientation hint where it proposed one.

    ``points``: the stored ORB descriptors of every row; ``descriptors_of(rows)``: the
    descriptor sets of those query rows (each picture's and its mirror's), asked for
    ``QUERY_CHUNK`` rows at a time; ``threads``: how many cores the keypoint search may use;
    ``age[row]``: the order in which the rows came (distinct values): each query row is then
    paired only with older rows, so give every query row a younger age than the rows it
    must meet. Without it, pairs are proposed from either side.
    """
    hashed, keypointed = search(keys, hashes, query_rows, points, descriptors_of, threads, age)
    waiting = WaitingCandidates.of(hashed, len(keys), age, ranked=keypointed)
    proposed = np.concatenate([hashed[:, :3], np.column_stack([keypointed[:, :2], np.full(len(keypointed), NO_ORIENTATION)])])
    held = waiting.rows[waiting.held_back()]
    asked = ~np.isin(proposed[:, 0] * len(keys) + proposed[:, 1], held[:, 0] * len(keys) + held[:, 1])
    return Candidates.of(proposed[asked], len(keys), waiting, None if age is None else twin_candidates(hashed, age))


def twin_candidates(hashed: np.ndarray, age: np.ndarray) -> np.ndarray:
    """int64[n, 3]: (query row, stored row, orientation) of each query's nearest older hash
    neighbour within ``ALIKE_BITS``, the oldest of the nearest: the picture it may be a twin
    of (``analysis.twins``). ``hashed``: ``_hash_search``'s rows, each stored row older than its query."""
    alike = hashed[hashed[:, 3] <= ALIKE_BITS]
    alike = alike[np.lexsort((age[alike[:, 1]], alike[:, 3], alike[:, 0]))]
    nearest = np.r_[True, alike[1:, 0] != alike[:-1, 0]] if len(alike) else np.zeros(0, dtype=bool)
    return alike[nearest, :3].reshape(-1, 3)


def search(
    keys: Sequence[str],
    hashes: np.ndarray,
    query_rows: np.ndarray,
    points: PointIndex | None = None,
    descriptors_of: Callable[[list[int]], dict[int, list[np.ndarray]]] | None = None,
    threads: int = 1,
    age: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``propose``'s two searches: the hash's rows (``_hash_search``) and the keypoints' (``keypoint_candidates``)."""
    hashed, crowded = _hash_search(hashes, query_rows, age)
    by_hash = Partners(hashed[:, :2], len(keys))  # held back or not, they are the hash's (``keypoint_candidates``)
    # A picture in a crowd searches no keypoints: the crowd's first pictures, which did, hold
    # the same points, and found its crops and overlays; its own search would look through
    # every copy of each of its points, the crowd's size squared in all.
    searching = [row for row in query_rows.tolist() if row not in crowded]
    ranked = [np.zeros((0, 3), np.int64)]
    if points is not None and descriptors_of is not None:
        for start in range(0, len(searching), QUERY_CHUNK):
            queries = descriptors_of(searching[start : start + QUERY_CHUNK])
            ranked.append(keypoint_candidates(points, len(keys), queries, by_hash, threads, age, hashes))
    return hashed, np.concatenate(ranked)
