"""The embedded backend's keypoint index, kept on disk between scans.

Building the index over every stored ORB descriptor took most of an incremental scan and grew
with the library: every descriptor read and decoded, the cells trained, every point added, for
a scan that compares a hundred new pictures. So the index is kept:

- the *base*: a faiss inverted-file index over the descriptors of the contents known when it
  was written, in a file beside the state, memory-mapped: a search reads only the lists it
  probes, not the whole file;
- its *segments*: contents analysed since, filed in the base's cells ``SEGMENT_CONTENTS`` or
  more at a time, each in a file of its own, also memory-mapped; the newest are merged into
  one as they come to outnumber the older (``_merges``), so a few of them hold a growth of
  a quarter;
- the *keys*: the content of each point's image (points are numbered by image, in key order),
  for the base and each segment, in a file that names them and the analyser version; written
  last, it is the commit point, so a crash leaves the old files or the new ones;
- the *delta*: fewer than ``SEGMENT_CONTENTS`` contents analysed since the last segment, in an
  in-memory index built at each scan from the ``features`` table: searched exhaustively for
  the few pictures of a small search, filed in the base's cells for a large one;
- contents gone since are skipped at search time (their points belong to no current row).

The segments bound what a scan reads and searches afresh: without them, the delta grew to a
quarter of the library between rewrites, and at a million pictures each scan would read its
250,000 contents' features (5 GB) and search their 9 million points exhaustively.

A search looks up each descriptor's nearest cells once (in a large search of many cells,
through groups of them: ``nearest_cells``), then the same cells of the base, of each segment
and of a delta filed in them. A base too large to hold mapped whole is searched
a span of cells at a time, each span's pages given back after it (``mapped_lists``).

A large base is built a shard at a time (``SHARD_POINTS``), each written beside the state,
and its file is written from the shards a span of cells at a time (``ivf_file``), then
searched from it: the build holds one shard, never the base's lists. Merging segments writes
them the same way. A base too large to build in memory that finds no room for that beside the
state stops the scan with the room it needs (``build_room``).

The base is written anew when the new (segments and delta) or the gone outgrow
``REWRITE_SHARE`` of it, or its cells no longer suit the collection's size: each rewrite is
then paid for by a growth of a quarter, so its cost per picture stays constant. The files are
a cache: missing, unreadable or of another analyser, the base is built again from the
``features`` table.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import cast

import faiss
import numpy as np

from dupe_scanner.analysis.candidates import (
    TRAINING_PER_CELL,
    PointOwners,
    PointsInMemory,
    empty_descriptor_index,
    inverted_lists_in,
    list_count,
    searched_exhaustively,
    train_partition,
)
from dupe_scanner.analysis.cell_order import Cells, Span, merge_nearest, within
from dupe_scanner.backends import ivf_file, mapped_lists
from dupe_scanner.backends.build_room import fits_in_memory, free_beside, no_room, room_needed
from dupe_scanner.backends.hash_store import KeyColumn
from dupe_scanner.backends.kept_arrays import UNREADABLE, read_arrays, write_arrays
from dupe_scanner.backends.mapped_lists import MappedLists, near_cells_together
from dupe_scanner.backends.nearest_cells import NearestCells, coarse_level, grouping_pays
from dupe_scanner.errors import FileWriteError
from dupe_scanner.fileio import fsync_file, remove_quietly
from dupe_scanner.memory import release_memory

log = logging.getLogger(__name__)

REWRITE_SHARE = 0.25  # the base is written anew once the new or the gone exceed this share of it
# New contents past which they are filed as a segment: a scan reads the features of at most
# this many (20 MB) and searches their points afresh, whatever the library's size.
SEGMENT_CONTENTS = 1000
# Segments kept at most: past it the newest two are merged whatever their sizes (each one is
# searched apart, in the same cells: a few lists' overhead for each descriptor).
MAX_SEGMENTS = 8
# Contents whose descriptors are read at once when an index is built: each content's are views
# into its whole 20 KB features blob, so a million at once would hold 20 GB.
LOAD_CHUNK = 2000
SAMPLE_CONTENTS = 2000  # contents read first to size the index (exactly, up to this many)
# Points a build holds in memory at once. Built in one go, faiss grows each inverted list by
# doubling it: a million simulated contents (37.7 million points, 1.5 GB) peaked at 2.4 GB.
# A larger base is built a shard of this many points at a time, each written to a file beside
# the state; the base's file is then written from them (``ivf_file``).
SHARD_POINTS = 1 << 20  # 42 MB of points
SHARD_SUFFIX = ".shard"
KEPT_SUFFIXES = (".ivf", ".flat", ".segment")  # the base (either kind) and the segments

# keys -> the descriptors of those contents, in the same order (empty arrays where none)
LoadDescriptors = Callable[[Sequence[str]], list[np.ndarray]]


@dataclass
class _Part:
    """A kept index file and the contents whose points it holds."""

    index: faiss.IndexBinary  # memory-mapped
    keys: np.ndarray  # the content of each image, in point order
    counts: np.ndarray  # points per image
    name: str  # the file's, beside the keys file


@dataclass
class _Kept:
    base: _Part
    segments: list[_Part] = field(default_factory=list)  # oldest first; only beside a base of inverted lists

    @property
    def parts(self) -> list[_Part]:
        return [self.base, *self.segments]

    @property
    def keys(self) -> np.ndarray:
        return np.concatenate([part.keys for part in self.parts]) if self.segments else self.base.keys

    @cached_property  # asked for by each step of a scan's ``points``: the centres copied out once
    def cells(self) -> np.ndarray | None:
        index = self.base.index
        if not isinstance(index, faiss.IndexBinaryIVF):
            return None
        return index.quantizer.reconstruct_n(0, index.nlist).astype(np.uint8)

    def filed(self) -> int:
        """Contents filed since the base was written."""
        return sum(len(segment.keys) for segment in self.segments)


class KeptPoints:
    """A ``PointIndex`` over the kept files and the delta, with image rows of the current ``keys``."""

    def __init__(self, kept: _Kept, kept_rows: np.ndarray, delta: PointsInMemory, nearest_cells: NearestCells | None = None):
        """``kept_rows``: the current row of each image of ``kept.keys`` (-1: gone);
        ``nearest_cells``: how to find the base's cells nearest a descriptor (by default, its
        every centre compared), where the base has cells."""
        self.kept, self.delta = kept, delta
        base = kept.base.index
        if nearest_cells is None and isinstance(base, faiss.IndexBinaryIVF):
            nearest_cells = NearestCells(base)
        self.nearest_cells = nearest_cells
        ends = np.cumsum([len(part.keys) for part in kept.parts])[:-1]
        self.owners = [PointOwners(rows, part.counts) for part, rows in zip(kept.parts, np.split(kept_rows, ends), strict=True)]
        self.points = sum(int(part.index.ntotal) for part in kept.parts) + delta.points

    @property
    def cells(self) -> np.ndarray | None:
        return self.kept.cells

    def cells_of(self, descriptors: np.ndarray) -> Cells | None:
        base = self.kept.base.index
        if not isinstance(base, faiss.IndexBinaryIVF):
            return None
        assert self.nearest_cells is not None
        return self.nearest_cells.search(descriptors, base.nprobe)

    def search(self, descriptors: np.ndarray, k: int, cells: Cells | None = None, span: Span | None = None) -> tuple[np.ndarray, np.ndarray]:
        base = self.kept.base.index
        if not isinstance(base, faiss.IndexBinaryIVF):  # a small library: one exhaustive base, no segments
            distances, ids = base.search(descriptors, k)
            found = [(distances, self.owners[0].of(ids))]
        else:  # each descriptor's nearest cells found once for every part, and a delta filed in them
            assert self.nearest_cells is not None
            cell_distances, nearest_cells = cells if cells is not None else self.nearest_cells.search(descriptors, base.nprobe)
            in_cells = [cast(faiss.IndexBinaryIVF, part.index) for part in self.kept.parts]  # segments only beside lists
            owners = list(self.owners)
            if isinstance(self.delta.index, faiss.IndexBinaryIVF):
                in_cells.append(self.delta.index)
                owners.append(self.delta.owners)
            if span is None:
                nearest = _searched_in_spans(in_cells, descriptors, k, nearest_cells, cell_distances, self._walked, self._mapped)
            else:
                nearest = _searched_within(in_cells, descriptors, k, nearest_cells, cell_distances, span)
            found = [(distances, of.of(ids)) for (distances, ids), of in zip(nearest, owners, strict=True)]
        if self.delta.points and not isinstance(self.delta.index, faiss.IndexBinaryIVF) and (span is None or span == self._every_cell):
            found.append(self.delta.search(descriptors, k))
        return merge_nearest(found, k)

    def spans(self) -> list[Span]:
        """The spans a search walks (``_walked``), where every point lies in the base's cells;
        else (a few new pictures' points searched exhaustively, beside a small search) one span
        of every cell, which holds those too."""
        if not isinstance(self.kept.base.index, faiss.IndexBinaryIVF):
            return []
        unfiled = self.delta.points and not isinstance(self.delta.index, faiss.IndexBinaryIVF)
        return [self._every_cell] if unfiled else self._walked

    def release(self, span: Span) -> None:
        """Give back this process's pages of the lists of ``span``'s cells, in the base and every segment."""
        for lists in self._mapped:
            lists.release(*span)

    @property
    def _every_cell(self) -> Span:
        return (0, int(cast(faiss.IndexBinaryIVF, self.kept.base.index).nlist))

    @cached_property
    def _mapped(self) -> list[MappedLists]:
        return [mapped for part in self.kept.parts if (mapped := MappedLists.of(part.index)) is not None]

    @cached_property
    def _walked(self) -> list[Span]:
        """The cell spans a search walks, giving back each one's pages after it (``mapped_lists``):
        one span of every cell, and none given back, while the mapped lists are held whole."""
        mapped_bytes, most = sum(mapped.size for mapped in self._mapped), mapped_lists.SPAN_BYTES
        base = MappedLists.of(self.kept.base.index)
        if base is None or mapped_bytes <= most:
            return [self._every_cell]
        return base.spans(most * base.size // mapped_bytes)  # a span of every part's lists within the bound


def _searched_in_spans(
    indexes: list[faiss.IndexBinaryIVF], descriptors: np.ndarray, k: int, nearest_cells: np.ndarray, cell_distances: np.ndarray,
    spans: list[tuple[int, int]], mapped: list[MappedLists],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The distances and point ids of the ``k`` nearest points of each descriptor in each of
    ``indexes``, its ``nearest_cells`` searched a span of cells at a time, each span's pages
    given back after it when there is more than one. A span is searched for the descriptors
    with a nearest cell in it alone. Points tied at the last distance kept may be other ones
    than a search of every cell at once keeps (``mapped_lists``)."""
    if len(spans) == 1:
        return [index.search_preassigned(descriptors, k, nearest_cells, cell_distances) for index in indexes]
    found = [_nothing_found(len(descriptors), k) for _ in indexes]
    for first, end in spans:
        probing = np.flatnonzero(((nearest_cells >= first) & (nearest_cells < end)).any(axis=1))
        found_here = _searched_within(indexes, descriptors[probing], k, nearest_cells[probing], cell_distances[probing], (first, end))
        for (distances, ids), more in zip(found, found_here, strict=True):
            distances[probing], ids[probing] = merge_nearest([(distances[probing], ids[probing]), more], k)
        for lists in mapped:
            lists.release(first, end)
    return found


def _searched_within(
    indexes: list[faiss.IndexBinaryIVF], descriptors: np.ndarray, k: int, nearest_cells: np.ndarray, cell_distances: np.ndarray, span: Span
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The distances and point ids of the ``k`` nearest points of each descriptor in each of
    ``indexes``, among those of its ``nearest_cells`` that lie in ``span`` alone."""
    cell_distances, nearest_cells = within((cell_distances, nearest_cells), span)
    return [index.search_preassigned(descriptors, k, nearest_cells, cell_distances) for index in indexes]


def _nothing_found(descriptors: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """What faiss gives a descriptor with no point in its cells: the largest distance, id -1."""
    return np.full((descriptors, k), np.iinfo(np.int32).max, dtype=np.int32), np.full((descriptors, k), -1, dtype=np.int64)


class KeypointStore:
    """Gives each scan a point index over the current contents, from the kept files when it can."""

    def __init__(self, keys_file: Path | None, analyser: str):
        self.keys_file = keys_file  # None: nothing is kept, every scan builds the index
        self.analyser = analyser
        self._groups: dict[bytes, faiss.IndexBinaryIVF] = {}  # the groups of the cells looked up last, by a digest of their centres

    def points(self, keys: Sequence[str], load: LoadDescriptors, queries: int = 0, encoded: np.ndarray | None = None):
        """A point index over the descriptors of ``keys``, for a search of ``queries`` pictures
        (``encoded``: the same keys as S64 bytes, where the caller holds them already)."""
        kept = self._read_kept()
        if kept is None:
            return self._rewrite(keys, load, None, queries)
        kept_rows, fresh = _rows_of(kept.keys, keys, encoded)
        if not _still_suits(kept, kept_rows, len(fresh)):
            cells = kept.cells
            del kept  # unmapped: its files' room is given to the new base where the disk has no more (``_make_room``)
            return self._rewrite(keys, load, cells, queries)
        if len(fresh) >= SEGMENT_CONTENTS and kept.cells is not None:
            with_segment = self._with_segment(kept, [keys[row] for row in fresh], load)
            if with_segment is not None:
                kept = with_segment
                kept_rows, fresh = _rows_of(kept.keys, keys, encoded)
        searched = _searched(kept.base.counts, queries)
        nearest_cells = self._nearest_cells_of_kept(kept, searched)
        delta = _delta(kept, fresh, [keys[row] for row in fresh], load, searched, nearest_cells)
        return KeptPoints(kept, kept_rows, delta, nearest_cells)

    def _rewrite(self, keys: Sequence[str], load: LoadDescriptors, cells: np.ndarray | None, queries: int) -> PointsInMemory | KeptPoints:
        """A new base over every content of ``keys``, read ``LOAD_CHUNK`` contents at a time,
        searched from its file once written by a search of ``queries`` pictures: the memory that
        built it is given back before the search. ``cells``: the kept base's, reused if they suit."""
        self._remove_stale_shards()
        reused = lambda expected: cells if cells is not None and _lists_suit(len(cells), expected) else None  # noqa: E731
        index, counts, shards = _built(keys, load, reused, self._nearest_cells, self.keys_file, self._make_room)
        try:
            written = self._write_base(index, keys, counts, shards)
            if not written and shards:
                if not fits_in_memory(points := int(counts.sum())):
                    assert self.keys_file is not None
                    raise no_room(self.keys_file, points, "its file could not be written")
                _copy_shards(cast(faiss.IndexBinaryIVF, index), shards)  # searched in memory this once
        finally:
            _remove_all(shards)
        kept = self._read_kept() if written else None
        if kept is None:
            return PointsInMemory(index, PointOwners(np.arange(len(keys)), counts))
        del index
        release_memory()
        return KeptPoints(kept, np.arange(len(keys)), _delta(kept, [], [], load, 0), self._nearest_cells_of_kept(kept, _searched(counts, queries)))

    def _make_room(self, points: int) -> None:
        """Room beside the state to build a base of ``points`` points in shards: the files of
        the one it replaces go first where the disk has no room for both (no longer suited,
        unreadable or of another analyser: a scan stopped midway would build anew too). Raises
        ``NoRoomForIndex`` where there is none even so and the base is too large to build in
        memory instead; a smaller one goes on, and is built in memory if its shards find no room."""
        assert self.keys_file is not None
        if free_beside(self.keys_file) >= room_needed(points):
            return
        if self._kept_files():
            log.info("the kept keypoint index is removed before it is built anew: the disk beside the state has no room for both")
            self._remove_unreferenced([])
            if free_beside(self.keys_file) >= room_needed(points):
                return
        if not fits_in_memory(points):
            raise no_room(self.keys_file, points)

    def _nearest_cells_of_kept(self, kept: _Kept, lookups: float) -> NearestCells | None:
        """How ``lookups`` descriptors find their nearest cells of ``kept``'s base, if it has cells."""
        index = kept.base.index
        return self._nearest_cells(index, lookups) if isinstance(index, faiss.IndexBinaryIVF) else None

    def _nearest_cells(self, index: faiss.IndexBinaryIVF, lookups: float) -> NearestCells:
        """How ``lookups`` descriptors (searched or filed) find their nearest cells of ``index``:
        through groups of its cells where that pays, made once for the build, the segments and
        all the parts of a scan that look up the same cells."""
        if not grouping_pays(index.nlist, lookups):
            return NearestCells(index)
        centres = index.quantizer.reconstruct_n(0, index.nlist).reshape(index.nlist, 32).astype(np.uint8)
        digest = hashlib.blake2b(centres.tobytes(), digest_size=16).digest()
        if digest not in self._groups:
            self._groups = {digest: coarse_level(centres)}
        return NearestCells(index, self._groups[digest])

    def _with_segment(self, kept: _Kept, fresh_keys: list[str], load: LoadDescriptors) -> _Kept | None:
        """``kept`` with the contents of ``fresh_keys`` filed in a new segment, the newest
        segments merged as ``_merges`` says; None where it cannot be written (the delta then
        holds them, as before)."""
        assert kept.cells is not None
        segment = inverted_lists_in(kept.cells)
        counts = _add_in_chunks(segment, fresh_keys, load, self._nearest_cells(segment, _points_of(kept.base.counts, len(fresh_keys))))
        try:
            self._commit_segment(kept, segment, np.array(fresh_keys, dtype="S64"), counts)
        except (OSError, RuntimeError, FileWriteError) as error:  # a cache: the delta holds them meanwhile
            log.warning("the keypoints of %d new pictures are not kept for the next scan: %s", len(fresh_keys), error)
            self._remove_unreferenced(kept.parts)
            return None
        del segment
        release_memory()  # a merge held the lists of the segments it merged (up to a quarter of the base)
        return self._read_kept()

    def _commit_segment(self, kept: _Kept, segment: faiss.IndexBinaryIVF, keys: np.ndarray, counts: np.ndarray) -> None:
        """Write ``segment`` beside ``kept``'s files, merge the newest, and name them all in the keys file."""
        assert kept.cells is not None
        segments = [*kept.segments, self._written_part(segment, keys, counts, ".segment")]
        for _ in range(_merges([len(part.keys) for part in segments])):
            segments[-2:] = [self._merged(kept.cells, segments[-2:])]
        self._commit(kept.base, segments)

    def _merged(self, cells: np.ndarray, parts: list[_Part]) -> _Part:
        """One segment holding the points of ``parts``, in their order."""
        assert self.keys_file is not None
        keys, counts = np.concatenate([part.keys for part in parts]), np.concatenate([part.counts for part in parts])
        return self._written_part(inverted_lists_in(cells), keys, counts, ".segment", [self.keys_file.with_name(part.name) for part in parts])

    # -- files ----------------------------------------------------------------------------------

    def _read_kept(self) -> _Kept | None:
        if self.keys_file is None:
            return None
        try:
            saved = read_arrays(self.keys_file)
            if str(saved["analyser"]) != self.analyser:
                return None
            base = self._read_part(str(saved["index"]), saved["keys"], saved["counts"])
            segments = []
            if "segments" in saved and len(saved["segments"]):  # keys files written before segments name none
                ends = np.cumsum(saved["segment_sizes"])[:-1]
                keys, counts = np.split(saved["segment_keys"], ends), np.split(saved["segment_counts"], ends)
                segments = [self._read_part(str(name), *found) for name, *found in zip(saved["segments"], keys, counts, strict=True)]
        except FileNotFoundError:
            return None
        except (*UNREADABLE, RuntimeError) as error:
            log.info("%s: the kept keypoint index is unreadable (%s); it is built again", self.keys_file, error)
            return None
        kept = _Kept(base, segments)
        if not all(int(part.index.ntotal) == int(part.counts.sum()) and len(part.keys) == len(part.counts) for part in kept.parts) or (
            segments and not _all_in_cells_of(base.index, segments)
        ):
            log.info("%s: the kept keypoint index disagrees with its keys; it is built again", self.keys_file)
            return None
        return kept

    def _read_part(self, name: str, keys: np.ndarray, counts: np.ndarray) -> _Part:
        assert self.keys_file is not None
        index = faiss.read_index_binary(str(self.keys_file.with_name(name)), faiss.IO_FLAG_MMAP if not name.endswith(".flat") else 0)
        if isinstance(index, faiss.IndexBinaryIVF):
            index.nprobe = 16
            _without_prefetch(index)
        return _Part(index, keys, counts, name)

    def _write_base(self, index, keys: Sequence[str], counts: np.ndarray, shards: Sequence[Path] = ()) -> bool:
        """Keep ``index`` for the next scans, with no segments (``shards``: files holding its
        points, ``index`` then being empty); whether it was written."""
        if self.keys_file is None:
            return False
        suffix = ".ivf" if isinstance(index, faiss.IndexBinaryIVF) else ".flat"
        try:
            encoded = keys.encoded if isinstance(keys, KeyColumn) else np.array(keys, dtype="S64")
            base = self._written_part(index, encoded, counts, suffix, shards)
            self._commit(base, [])
        except (OSError, RuntimeError, FileWriteError) as error:  # a cache: the next scan builds it again
            # The old files too: the base they hold is being replaced, and on a full disk their
            # room is what the next build needs (the next scan, finding them gone, builds it).
            self._remove_unreferenced([])
            log.warning("the keypoint index is not kept for the next scan: %s", error)
            return False
        return True

    def _written_part(self, index, keys: np.ndarray, counts: np.ndarray, suffix: str, shards: Sequence[Path] = ()) -> _Part:
        """``index`` written in a new file beside the keys file (not yet named by it); with
        ``shards``, ``index`` is empty and the points are theirs (``ivf_file``)."""
        assert self.keys_file is not None
        name = f"{self.keys_file.name}.{uuid.uuid4().hex[:12]}{suffix}"
        path = self.keys_file.with_name(name)
        try:
            if shards:
                ivf_file.write_from_shards(index, shards, path)
            else:
                faiss.write_index_binary(index, str(path))
            fsync_file(path)
        except BaseException:
            remove_quietly(path)
            raise
        return _Part(index, keys, counts, name)

    def _commit(self, base: _Part, segments: list[_Part]) -> None:
        """Name ``base`` and ``segments`` in the keys file, then remove the files they replace."""
        assert self.keys_file is not None
        arrays = {
            "keys": base.keys,
            "counts": base.counts,
            "index": np.array(base.name),
            "analyser": np.array(self.analyser),
            "segments": np.array([segment.name for segment in segments], dtype=str),
            "segment_sizes": np.array([len(segment.keys) for segment in segments], dtype=np.int64),
            "segment_keys": np.concatenate([segment.keys for segment in segments] or [np.zeros(0, dtype="S64")]),
            "segment_counts": np.concatenate([segment.counts for segment in segments] or [np.zeros(0, dtype=np.int64)]),
        }
        write_arrays(self.keys_file, arrays)
        self._remove_unreferenced([base, *segments])

    def _remove_unreferenced(self, parts: list[_Part]) -> None:
        """Kept index files no part of ``parts`` is: replaced, or written by a change that failed."""
        named = {part.name for part in parts}
        for path in self._kept_files():
            if path.name not in named:
                remove_quietly(path)

    def _kept_files(self) -> list[Path]:
        """The kept index files beside the keys file (a base, segments), named by it or not."""
        assert self.keys_file is not None
        return [path for path in self.keys_file.parent.glob(f"{self.keys_file.name}.*") if path.suffix in KEPT_SUFFIXES]

    def _remove_stale_shards(self) -> None:
        """Shards a build stopped midway left (one service per state: none is being written)."""
        if self.keys_file is not None:
            for stale in self.keys_file.parent.glob(f"{self.keys_file.name}.*{SHARD_SUFFIX}"):
                remove_quietly(stale)

    def clear(self) -> None:
        if self.keys_file is None:
            return
        for path in self.keys_file.parent.glob(f"{self.keys_file.name}*"):
            remove_quietly(path)


def _searched(counts: np.ndarray, queries: int) -> float:
    """The query descriptors a search of ``queries`` pictures is expected to have, in a base of
    pictures with ``counts`` points: each picture's points and its mirror's."""
    return 2 * _points_of(counts, queries)


def _points_of(counts: np.ndarray, pictures: int) -> float:
    """The points ``pictures`` pictures are expected to have, in a base of pictures with ``counts`` points."""
    return pictures * float(counts.mean()) if len(counts) else 0.0


def _without_prefetch(index: faiss.IndexBinaryIVF) -> None:
    """Search the memory-mapped lists in the calling thread. faiss reads them as
    ``OnDiskInvertedLists``, which before each search starts 32 threads to touch the lists
    it will probe: on the kept base of 16,000 pictures that doubled the search's CPU
    (5.1 against 2.6 s for the same 51,464 descriptors), for pages the search reads anyway."""
    lists = faiss.downcast_InvertedLists(index.invlists)
    if isinstance(lists, faiss.OnDiskInvertedLists):
        lists.prefetch_nthread = 0


def _rows_of(base_keys: np.ndarray, keys: Sequence[str], encoded: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """The current row of each base image (-1: gone), and the rows the base lacks
    (``encoded``: ``keys`` as S64 bytes, if at hand: converting a million keys is a quarter of the cost).

    By a binary search of the keys (which come sorted, as the hash table keeps them), not a
    dictionary of a million strings: half the time at a million contents.
    """
    current = np.array(keys, dtype="S64") if encoded is None else encoded
    if not len(current):
        return np.full(len(base_keys), -1, dtype=np.int64), []
    order = None if bool(np.all(current[1:] >= current[:-1])) else np.argsort(current, kind="stable")
    ordered = current if order is None else current[order]
    at = np.minimum(np.searchsorted(ordered, base_keys), len(ordered) - 1)
    found = ordered[at] == base_keys
    rows = at if order is None else order[at]
    base_rows = np.where(found, rows, -1).astype(np.int64)
    in_base = np.zeros(len(keys), dtype=bool)
    in_base[base_rows[found]] = True
    return base_rows, np.flatnonzero(~in_base).tolist()


def _still_suits(kept: _Kept, kept_rows: np.ndarray, fresh: int) -> bool:
    """Whether the kept files serve a scan that finds ``fresh`` contents new since the last
    segment: neither the new since the base (filed or not) nor the gone outgrow
    ``REWRITE_SHARE`` of it, and its cells suit the collection's size."""
    gone = int((kept_rows < 0).sum())
    kept_points = sum(int(part.counts.sum()) for part in kept.parts)
    return max(kept.filed() + fresh, gone) <= REWRITE_SHARE * max(1, len(kept.base.keys)) and _cells_suit(kept, kept_points + 160 * fresh)


def _merges(sizes: list[int]) -> int:
    """How many times the newest two of segments of these sizes (oldest first) are merged:
    while the newest is as large as the one before it, or there are more than ``MAX_SEGMENTS``.

    As in a binary counter, the sizes then fall from the oldest to the newest, a growth of G
    contents is held in about log2(G / ``SEGMENT_CONTENTS``) segments, and a point is copied
    that many times at most.
    """
    sizes = list(sizes)
    merges = 0
    while len(sizes) > 1 and (sizes[-1] >= sizes[-2] or len(sizes) > MAX_SEGMENTS):
        sizes[-2:] = [sizes[-2] + sizes[-1]]
        merges += 1
    return merges


def _all_in_cells_of(base: faiss.IndexBinary, segments: list[_Part]) -> bool:
    return isinstance(base, faiss.IndexBinaryIVF) and all(
        isinstance(segment.index, faiss.IndexBinaryIVF) and segment.index.nlist == base.nlist for segment in segments
    )


def _delta(
    kept: _Kept, fresh: list[int], fresh_keys: list[str], load: LoadDescriptors, searched: float, nearest_cells: NearestCells | None = None
) -> PointsInMemory:
    """The fresh rows' points, for a search of about ``searched`` descriptors: filed in the
    base's cells for a large search, else searched exhaustively.

    Searched exhaustively, every descriptor is compared with every fresh point. Filed in the
    base's cells, every fresh point is first compared with every cell, then a descriptor only
    with the fresh points of the cells the base's search probes anyway. So the cells pay once
    a search has about as many descriptors as there are cells: a part of a full comparison or
    a scan of a hundred new pictures files them, the service's scan of a few new ones does not.
    Filed, they are looked up as the search looks up its descriptors (``nearest_cells``).
    """
    cells = kept.cells
    index = inverted_lists_in(cells) if cells is not None and searched >= len(cells) else faiss.IndexBinaryFlat(256)
    counts = _add_in_chunks(index, fresh_keys, load, nearest_cells)
    return PointsInMemory(index, PointOwners(np.array(fresh, dtype=np.int64), counts))


@dataclass
class _Sample:
    descriptors: np.ndarray  # copied out of their blobs
    contents: int  # how many contents they come from
    counts: np.ndarray | None  # points per content, when the sample is every content


def _built(
    keys: Sequence[str],
    load: LoadDescriptors,
    kept_cells: Callable[[int], np.ndarray | None],
    nearest_cells: Callable[[faiss.IndexBinaryIVF, float], NearestCells],
    shards_beside: Path | None = None,
    make_room: Callable[[int], None] = lambda points: None,
) -> tuple[object, np.ndarray, list[Path]]:
    """An index over the descriptors of ``keys``, the points of each, and the shards holding
    them if there are any (the index is then empty), read a chunk at a time.

    ``kept_cells(expected points)``: cells to reuse, or None to train new ones. A first
    sample of the contents sizes the index (exhaustive or inverted lists, how many cells).
    ``nearest_cells(index, expected points)``: how the points find their cells of an index of
    inverted lists.
    ``shards_beside``: a file the shards of a large index are written beside (``SHARD_POINTS``),
    for the caller to write the index from and remove; None builds it in memory in one go.
    ``make_room(expected points)``: called before a build in shards starts; raises if there is no room.
    """
    sample = _sample(keys, load)
    expected = round(len(sample.descriptors) * len(keys) / max(1, sample.contents))
    in_shards = shards_beside is not None and not searched_exhaustively(expected) and expected > SHARD_POINTS
    if in_shards:
        make_room(expected)  # before the cells are trained: minutes, at a million pictures
    cells = kept_cells(expected)
    if sample.counts is None and cells is None and _trains_on_everything(expected):
        sample = _whole(keys, load)  # training would read every content anyway: once is enough
    index = empty_descriptor_index(expected, partial(_centres, cells, sample, keys, load, expected))
    if sample.counts is not None:  # the sample is every content: no need to read them again
        if len(sample.descriptors):
            index.add(sample.descriptors)
        return index, sample.counts, []
    del sample
    filing = nearest_cells(index, expected) if isinstance(index, faiss.IndexBinaryIVF) else None
    if in_shards:
        assert filing is not None and shards_beside is not None
        return _built_in_shards(index, keys, load, shards_beside, filing, expected)
    return index, _add_in_chunks(index, keys, load, filing), []


def _centres(
    kept: np.ndarray | None, sample: _Sample, keys: Sequence[str], load: LoadDescriptors, points: int, lists: int
) -> np.ndarray:
    """The kept cells, or ``lists`` cells trained on the sample, for a base of about ``points``
    points; near ones numbered together if it may be searched in spans."""
    centres = kept if kept is not None else _trained(sample, lists, keys, load)
    return near_cells_together(centres) if _may_be_walked_in_spans(points) else centres


def _may_be_walked_in_spans(points: int) -> bool:
    """Whether a base of ``points`` points, with the segments it may gather before it is written
    anew, can hold more lists than a search holds at once (``mapped_lists``). Only such a base
    has its cells numbered near ones together: that decides which of two equally near cells
    a point or a search goes to, so a smaller base stays the file it was."""
    return points * (1 + REWRITE_SHARE) * mapped_lists.POINT_BYTES > mapped_lists.SPAN_BYTES


def _sample(keys: Sequence[str], load: LoadDescriptors) -> _Sample:
    """The descriptors of up to ``SAMPLE_CONTENTS`` contents spread over ``keys``."""
    chosen = keys[:: max(1, -(-len(keys) // SAMPLE_CONTENTS))]
    stored = load(chosen)
    counts = np.array([len(d) for d in stored], dtype=np.int64)
    return _Sample(_stacked(stored), len(chosen), counts if len(chosen) == len(keys) else None)


def _trains_on_everything(points: int) -> bool:
    """Whether training cells for ``points`` points draws on all of them (a small library:
    at most 25,600 points, under 1 MB)."""
    return not searched_exhaustively(points) and points <= TRAINING_PER_CELL * list_count(points)


def _whole(keys: Sequence[str], load: LoadDescriptors) -> _Sample:
    """Every content's descriptors, copied out of their blobs a chunk at a time."""
    chunks = [load(keys[start : start + LOAD_CHUNK]) for start in range(0, len(keys), LOAD_CHUNK)]
    counts = np.array([len(d) for chunk in chunks for d in chunk], dtype=np.int64)
    return _Sample(np.concatenate([_stacked(chunk) for chunk in chunks] or [np.zeros((0, 32), np.uint8)]), len(keys), counts)


def _trained(sample: _Sample, lists: int, keys: Sequence[str], load: LoadDescriptors) -> np.ndarray:
    """Cells trained on up to ``TRAINING_PER_CELL`` descriptors a cell, read from more
    contents than the sizing sample where it has too few."""
    descriptors = sample.descriptors
    wanted = TRAINING_PER_CELL * lists
    if len(descriptors) < wanted and sample.counts is None and len(descriptors):
        per_content = len(descriptors) / sample.contents
        step = max(1, int(len(keys) * per_content / wanted))
        chunks = [_stacked(load(keys[start : start + LOAD_CHUNK * step : step])) for start in range(0, len(keys), LOAD_CHUNK * step)]
        descriptors = np.concatenate([descriptors, *chunks])
    return train_partition(descriptors, lists)


def _add_in_chunks(index, keys: Sequence[str], load: LoadDescriptors, nearest_cells: NearestCells | None = None) -> np.ndarray:
    """Add the descriptors of ``keys`` to ``index``, in key order, each in the cell
    ``nearest_cells`` finds if it has cells (else faiss's own lookup); the points of each content."""
    counts = np.zeros(len(keys), dtype=np.int64)
    for start in range(0, len(keys), LOAD_CHUNK):
        stored = load(keys[start : start + LOAD_CHUNK])
        counts[start : start + len(stored)] = [len(d) for d in stored]
        if counts[start : start + len(stored)].any():
            _file(index, _stacked(stored), nearest_cells)
    return counts


def _file(index, points: np.ndarray, nearest_cells: NearestCells | None) -> None:
    if nearest_cells is not None and isinstance(index, faiss.IndexBinaryIVF):
        nearest_cells.file(index, points)
    else:
        index.add(points)


def _built_in_shards(
    index: faiss.IndexBinaryIVF, keys: Sequence[str], load: LoadDescriptors, beside: Path, nearest_cells: NearestCells, expected: int
) -> tuple[faiss.IndexBinaryIVF, np.ndarray, list[Path]]:
    """``index`` (empty), the points of each content, and the shards of ``SHARD_POINTS``
    points holding them, written beside ``beside``: a build holds one shard at a time. A
    shard that cannot be written (a full disk) leaves the build to memory, in one go, as for
    a small library, if the ``expected`` points fit there (``build_room``); else the scan stops."""
    centres = index.quantizer.reconstruct_n(0, index.nlist).astype(np.uint8)
    counts = np.zeros(len(keys), dtype=np.int64)
    files: list[Path] = []
    try:
        _write_shards(centres, keys, load, beside, counts, files, nearest_cells)
        return index, counts, files
    except (OSError, RuntimeError, FileWriteError) as error:
        _remove_all(files)
        if not fits_in_memory(expected):
            raise no_room(beside, expected, f"a shard of its build could not be written: {error}") from None
        log.warning("the keypoint index is built in memory in one go: its shards cannot be kept beside the state (%s)", error)
    except BaseException:
        _remove_all(files)
        raise
    whole = inverted_lists_in(centres)
    return whole, _add_in_chunks(whole, keys, load, nearest_cells), []


def _remove_all(files: list[Path]) -> None:
    for path in files:
        remove_quietly(path)


def _write_shards(
    centres: np.ndarray, keys: Sequence[str], load: LoadDescriptors, beside: Path, counts: np.ndarray, files: list[Path], nearest_cells: NearestCells
) -> None:
    """Fill ``counts`` with each content's points, and write them a shard at a time, in key
    order, to files beside ``beside`` (named in ``files`` as each is written), each in the
    cell ``nearest_cells`` finds."""
    shard = inverted_lists_in(centres)
    for start in range(0, len(keys), LOAD_CHUNK):
        stored = load(keys[start : start + LOAD_CHUNK])
        counts[start : start + len(stored)] = [len(d) for d in stored]
        if counts[start : start + len(stored)].any():
            nearest_cells.file(shard, _stacked(stored))
        if shard.ntotal >= SHARD_POINTS or start + LOAD_CHUNK >= len(keys):
            files.append(beside.with_name(f"{beside.name}.{uuid.uuid4().hex[:12]}{SHARD_SUFFIX}"))
            faiss.write_index_binary(shard, str(files[-1]))
            shard = inverted_lists_in(centres)


def _copy_shards(index: faiss.IndexBinaryIVF, files: list[Path]) -> None:
    """The shards' points into ``index``'s lists, each list sized first to hold them all; a
    shard's points numbered on from the last one's. One shard is mapped at a time. For a base
    whose file cannot be written: it is searched in memory that once."""
    sizes = np.zeros((len(files), index.nlist), dtype=np.int64)
    for number, path in enumerate(files):
        shard = _mapped_shard(path)
        sizes[number] = [shard.invlists.list_size(cell) for cell in range(index.nlist)]
    lists = faiss.downcast_InvertedLists(index.invlists)
    for cell in np.flatnonzero(sizes.sum(axis=0)).tolist():
        lists.resize(cell, int(sizes[:, cell].sum()))
    filled = np.zeros(index.nlist, dtype=np.int64)
    first_point = 0
    for number, path in enumerate(files):
        shard = _mapped_shard(path)
        for cell in np.flatnonzero(sizes[number]).tolist():
            size = int(sizes[number, cell])
            ids = faiss.rev_swig_ptr(shard.invlists.get_ids(cell), size) + first_point
            lists.update_entries(cell, int(filled[cell]), size, faiss.swig_ptr(ids), shard.invlists.get_codes(cell))
        filled += sizes[number]
        first_point += int(shard.ntotal)
        del shard  # unmapped: its pages leave this process
    index.ntotal = first_point


def _mapped_shard(path: Path) -> faiss.IndexBinaryIVF:
    return cast(faiss.IndexBinaryIVF, faiss.read_index_binary(str(path), faiss.IO_FLAG_MMAP))


def _stacked(stored: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([d for d in stored if len(d)] or [np.zeros((0, 32), np.uint8)]), dtype=np.uint8)


def _lists_suit(lists: int, points: int) -> bool:
    wanted = list_count(points)
    return wanted / 2 <= lists <= 2 * wanted


def _cells_suit(kept: _Kept, points: int) -> bool:
    """Whether the base's kind of index (and its cells) still suits a collection of ``points``."""
    cells = kept.cells
    if cells is None:
        return searched_exhaustively(points)
    return not searched_exhaustively(points) and _lists_suit(len(cells), points)
