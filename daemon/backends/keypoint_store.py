"""The embedded backend's keypoint index, kept on disk between scans.

Building the index over every stored ORB descriptor took most of an incremental scan and grew
with the library: every descriptor read and decoded, the cells trained, every point added, for
a scan that compares a hundred new pictures. So the index is kept:

- the *base*: a faiss inverted-file index over the descriptors of the contents known when it
  was written, in a file beside the state, memory-mapped: a search reads only the lists it
  probes, not the whole file;
- its *keys*: the content of each point's image (points are numbered by image, in key order),
  in a second file that names the base and the analyser version; written last, it is the
  commit point, so a crash leaves the old pair or the new one;
- the *delta*: contents analysed since, in a small in-memory index over the base's cells,
  built at each scan from the ``features`` table;
- contents gone since are skipped at search time (their points belong to no current row).

The base is written anew when the delta or the gone outgrow ``REWRITE_SHARE`` of it, or its
cells no longer suit the collection's size: each rewrite is then paid for by a growth of a
quarter, so its cost per picture stays constant. The files are a cache: missing, unreadable
or of another analyser, the base is built again from the ``features`` table.
"""

from __future__ import annotations

import io
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from daemon.analysis.candidates import (
    PointsInMemory,
    descriptor_index,
    list_count,
    merge_nearest,
    searched_exhaustively,
    train_partition,
)
from daemon.errors import FileWriteError
from daemon.fileio import atomic_write_bytes, fsync_file, remove_quietly

log = logging.getLogger(__name__)

REWRITE_SHARE = 0.25  # the base is written anew once the new or the gone exceed this share of it

# keys -> the descriptors of those contents, in the same order (empty arrays where none)
LoadDescriptors = Callable[[list[str]], list[np.ndarray]]


@dataclass
class _Base:
    index: object  # faiss.IndexBinary, memory-mapped
    keys: np.ndarray  # the content of each image in the base, in point order
    counts: np.ndarray  # points per image

    @property
    def cells(self) -> np.ndarray | None:
        if not isinstance(self.index, faiss.IndexBinaryIVF):
            return None
        return self.index.quantizer.reconstruct_n(0, self.index.nlist).astype(np.uint8)


class KeptPoints:
    """A ``PointIndex`` over the base and the delta, with image rows of the current ``keys``."""

    def __init__(self, base: _Base, base_rows: np.ndarray, delta: PointsInMemory):
        self.base, self.delta = base, delta
        self.point_rows = np.repeat(base_rows, base.counts)  # base point id -> current row, or -1
        self.points = int(base.index.ntotal) + delta.points

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances, ids = self.base.index.search(descriptors, k)
        base_rows = np.where(ids >= 0, self.point_rows[np.maximum(ids, 0)], -1)
        if not self.delta.points:
            return distances, base_rows
        return merge_nearest([(distances, base_rows), self.delta.search(descriptors, k)], k)


class KeypointStore:
    """Gives each scan a point index over the current contents, from the kept base when it can."""

    def __init__(self, keys_file: Path | None, analyser: str):
        self.keys_file = keys_file  # None: nothing is kept, every scan builds the index
        self.analyser = analyser

    def points(self, keys: list[str], load: LoadDescriptors):
        base = self._read_base()
        if base is not None:
            base_rows, fresh = _rows_of(base.keys, keys)
            gone = int((base_rows < 0).sum())
            if max(len(fresh), gone) <= REWRITE_SHARE * max(1, len(base.keys)) and _cells_suit(base, base.counts.sum() + 160 * len(fresh)):
                return KeptPoints(base, base_rows, _delta(base, fresh, load([keys[row] for row in fresh])))
        return self._rewrite(keys, load(keys), base)

    def _rewrite(self, keys: list[str], stored: list[np.ndarray], old: _Base | None) -> PointsInMemory:
        counts = np.array([len(d) for d in stored], dtype=np.int64)
        database = np.ascontiguousarray(np.concatenate([d for d in stored if len(d)] or [np.zeros((0, 32), np.uint8)]), dtype=np.uint8)
        cells = old.cells if old is not None else None
        partition = (lambda _database, lists: cells) if cells is not None and _lists_suit(len(cells), len(database)) else train_partition
        index = descriptor_index(database, partition)
        self._write_base(index, keys, counts)
        return PointsInMemory(index, np.repeat(np.arange(len(stored)), counts))

    # -- files ----------------------------------------------------------------------------------

    def _read_base(self) -> _Base | None:
        if self.keys_file is None:
            return None
        try:
            with np.load(self.keys_file, allow_pickle=False) as saved:
                if str(saved["analyser"]) != self.analyser:
                    return None
                keys, counts, index_name = saved["keys"], saved["counts"], str(saved["index"])
            index_path = self.keys_file.with_name(index_name)
            index = faiss.read_index_binary(str(index_path), faiss.IO_FLAG_MMAP if index_name.endswith(".ivf") else 0)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            log.info("%s: the kept keypoint index is unreadable (%s); it is built again", self.keys_file, error)
            return None
        if int(index.ntotal) != int(counts.sum()) or len(keys) != len(counts):
            log.info("%s: the kept keypoint index disagrees with its keys; it is built again", self.keys_file)
            return None
        if isinstance(index, faiss.IndexBinaryIVF):
            index.nprobe = 16
        return _Base(index, keys, counts)

    def _write_base(self, index, keys: list[str], counts: np.ndarray) -> None:
        if self.keys_file is None:
            return
        folder = self.keys_file.parent
        suffix = ".ivf" if isinstance(index, faiss.IndexBinaryIVF) else ".flat"
        index_name = f"{self.keys_file.name}.{uuid.uuid4().hex[:12]}{suffix}"
        try:
            faiss.write_index_binary(index, str(folder / index_name))
            fsync_file(folder / index_name)
            buffer = io.BytesIO()
            np.savez(buffer, keys=np.array(keys, dtype="S64"), counts=counts, index=np.array(index_name), analyser=np.array(self.analyser))
            atomic_write_bytes(self.keys_file, buffer.getvalue())
        except (OSError, RuntimeError, FileWriteError) as error:  # a cache: the next scan builds it again
            remove_quietly(folder / index_name)
            log.warning("the keypoint index is not kept for the next scan: %s", error)
            return
        for stale in folder.glob(f"{self.keys_file.name}.*"):
            if stale.name != index_name and stale.suffix in (".ivf", ".flat"):
                remove_quietly(stale)

    def clear(self) -> None:
        if self.keys_file is None:
            return
        for path in self.keys_file.parent.glob(f"{self.keys_file.name}*"):
            remove_quietly(path)


def _rows_of(base_keys: np.ndarray, keys: list[str]) -> tuple[np.ndarray, list[int]]:
    """The current row of each base image (-1: gone), and the rows the base lacks."""
    row_of = {key: row for row, key in enumerate(keys)}
    base_rows = np.array([row_of.get(key.decode(), -1) for key in base_keys.tolist()], dtype=np.int64)
    in_base = set(base_rows[base_rows >= 0].tolist())
    return base_rows, [row for row in range(len(keys)) if row not in in_base]


def _delta(base: _Base, fresh: list[int], stored: list[np.ndarray]) -> PointsInMemory:
    """The fresh rows' points: searched exhaustively while few, beyond that in the base's cells."""
    counts = np.array([len(d) for d in stored], dtype=np.int64)
    database = np.ascontiguousarray(np.concatenate([d for d in stored if len(d)] or [np.zeros((0, 32), np.uint8)]), dtype=np.uint8)
    cells = base.cells
    partition = (lambda _database, _lists: cells) if cells is not None else train_partition
    return PointsInMemory(descriptor_index(database, partition), np.repeat(np.array(fresh, dtype=np.int64), counts))


def _lists_suit(lists: int, points: int) -> bool:
    wanted = list_count(points)
    return wanted / 2 <= lists <= 2 * wanted


def _cells_suit(base: _Base, points: int) -> bool:
    """Whether the base's kind of index (and its cells) still suits a collection of ``points``."""
    cells = base.cells
    if cells is None:
        return searched_exhaustively(points)
    return not searched_exhaustively(points) and _lists_suit(len(cells), points)
