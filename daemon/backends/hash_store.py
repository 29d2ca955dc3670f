"""The embedded backend's table of every content's hashes, kept on disk between scans.

Every scan searches the hashes of the contents it compares among the hashes of all contents,
so it needs all of them, with when each content was analysed (the order pairs are asked in).
Read from the state, that is a join of two tables of a million rows and a sort: about 10 s
at a million contents, for a scan that compares a hundred new pictures. So the table the last
scan used is kept in a file beside the state, and a scan reads from the state only the rows
of the contents it compares (all of them new or analysed again since) and merges them in.

The file is a cache. A content's hashes depend only on its bytes and the analyser, so a kept
row is never wrong while the analyser is the same; what the file cannot know by itself is a
content forgotten since. So the backend tells it (``forget``: its rows are taken out as the
state lets go of them), and the merged table must hold exactly as many contents as the state
has fingerprints: when it does not (a crash between the state and the file, a scan by another
process that did not write the file), or the file is missing, unreadable or of another
analyser, the table is read from the state whole, and written again.

Contents are forgotten whenever a picture is deleted, moved out of the watched folders or
edited, and whenever a damaged fingerprint is found. Before ``forget``, the scan after any of
that read the whole table from the state: 8 s and 1 GB at a million contents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import SupportsIndex, overload

import numpy as np

from dupe_scanner.backends.kept_arrays import UNREADABLE, read_arrays, remove_arrays, write_arrays
from dupe_scanner.errors import FileWriteError

log = logging.getLogger(__name__)


class KeyColumn(Sequence[str]):
    """Content keys, held as the table's S64 array, each decoded to a string when asked for.

    A scan looks up the keys of its candidates' rows alone, a few thousand; a list of every
    key as a Python string cost 0.2 s and about 110 MB at a million contents, at every scan.
    """

    def __init__(self, encoded: np.ndarray):
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    @overload
    def __getitem__(self, at: SupportsIndex) -> str: ...

    @overload
    def __getitem__(self, at: slice) -> list[str]: ...

    def __getitem__(self, at: SupportsIndex | slice) -> str | list[str]:
        if isinstance(at, slice):
            return [key.decode("ascii") for key in self.encoded[at].tolist()]
        return self.encoded[at].decode("ascii")


@dataclass(frozen=True)
class HashTable:
    """Every analysed content's key, in key order, its hashes and when it was analysed."""

    keys: np.ndarray  # S64: content keys, sorted
    hashes: np.ndarray  # uint64[N, 8]: the hash of each orientation
    analysed_at: np.ndarray  # float64[N]: 0 where the state does not know the content

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, keys: list[str], hashes: np.ndarray, analysed_at: np.ndarray) -> HashTable:
        """From rows in any order."""
        encoded = np.array(keys, dtype="S64")
        order = np.argsort(encoded, kind="stable")
        return cls(encoded[order], np.asarray(hashes, np.uint64).reshape(-1, 8)[order], np.asarray(analysed_at, np.float64)[order])

    def key_list(self) -> list[str]:
        return [key.decode("ascii") for key in self.keys.tolist()]

    def key_column(self) -> KeyColumn:
        """The keys as strings, each made one only when asked for (``KeyColumn``)."""
        return KeyColumn(self.keys)

    def holds(self, rows: HashTable) -> bool:
        """Whether every row of ``rows`` is in this table, as it is."""
        at, found = self._places(rows.keys)
        return bool(found.all() and np.array_equal(self.hashes[at], rows.hashes) and np.array_equal(self.analysed_at[at], rows.analysed_at))

    def merged(self, fresh: HashTable) -> HashTable:
        """This table with ``fresh``'s rows added, or put in place of the rows of the same key.

        Both tables are in key order, so ``fresh``'s rows are placed by binary search and the
        table is copied once: at a million contents a scan of a hundred new ones paid 0.6 to
        0.9 CPU s to sort every key again."""
        at, found = self._places(fresh.keys)
        new = ~found
        keys = np.insert(self.keys, at[new], fresh.keys[new])
        hashes = np.insert(self.hashes, at[new], fresh.hashes[new], axis=0)
        analysed_at = np.insert(self.analysed_at, at[new], fresh.analysed_at[new])
        # A row analysed again moves down by the new rows inserted before it.
        replaced = at[found] + np.searchsorted(at[new], at[found], side="right")
        hashes[replaced], analysed_at[replaced] = fresh.hashes[found], fresh.analysed_at[found]
        return HashTable(keys, hashes, analysed_at)

    def without(self, keys: np.ndarray) -> HashTable:
        """This table without the rows of ``keys`` (S64, in key order); itself if it holds none."""
        at, found = self._places(keys)
        if not found.any():
            return self
        staying = np.ones(len(self), dtype=bool)
        staying[at[found]] = False
        return HashTable(self.keys[staying], self.hashes[staying], self.analysed_at[staying])

    def _places(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each of ``keys`` (in key order) is or would go, and whether it is there."""
        at = np.searchsorted(self.keys, keys)
        found = at < len(self)
        found[found] = self.keys[at[found]] == keys[found]
        return at, found


# Reads from the state: every content's rows; the rows of some contents, with how many
# contents have a fingerprint of the current analyser (read together, so no content indexed
# in between can make the two disagree).
ReadAll = Callable[[], HashTable]
ReadSome = Callable[[Collection[str]], tuple[HashTable, int]]


class HashStore:
    """Gives each scan every content's hashes, from the kept table when it can."""

    def __init__(self, path: Path | None, analyser: str):
        self.path = path  # None: nothing is kept, every scan reads the state
        self.analyser = analyser

    def table(self, changed: Collection[str] | None, read_all: ReadAll, read_some: ReadSome) -> HashTable:
        """Every content's hashes. ``changed``: the contents analysed since the last scan (it
        read every other), or None when every content is read from the state anyway."""
        kept = self._read() if changed is not None else None
        if kept is not None and changed is not None:
            fresh, count = read_some(changed)
            table = kept.merged(fresh)
            if len(table) == count:
                if not kept.holds(fresh):  # the parts of a long scan after the first: nothing new to keep
                    self._write(table)
                return table
            log.debug("%s: the kept hash table no longer adds up to the state's contents; read again", self.path)
        table = read_all()
        self._write(table)
        return table

    def forget(self, keys: Collection[str]) -> None:
        """Take the rows of these contents (forgotten by the state) out of the kept table."""
        kept = self._read() if keys else None
        if kept is None:
            return
        remaining = kept.without(np.array(sorted(keys), dtype="S64"))
        if remaining is not kept:
            self._write(remaining)

    def clear(self) -> None:
        if self.path is not None:
            remove_arrays(self.path)

    def _read(self) -> HashTable | None:
        if self.path is None:
            return None
        try:
            saved = read_arrays(self.path)
            if str(saved["analyser"]) != self.analyser:
                return None
            table = HashTable(saved["keys"], saved["hashes"], saved["analysed_at"])
        except FileNotFoundError:
            return None
        except UNREADABLE as error:
            log.info("%s: the kept hash table is unreadable (%s); it is read from the state again", self.path, error)
            return None
        if table.hashes.shape != (len(table), 8) or table.analysed_at.shape != (len(table),) or table.keys.dtype != np.dtype("S64"):
            log.info("%s: the kept hash table is malformed; it is read from the state again", self.path)
            return None
        return table

    def _write(self, table: HashTable) -> None:
        if self.path is None:
            return
        arrays = {"analyser": np.array(self.analyser), "keys": table.keys, "hashes": table.hashes, "analysed_at": table.analysed_at}
        try:
            write_arrays(self.path, arrays)
        except FileWriteError as error:  # a cache; an old file must not outlive the scan that outdated it
            remove_arrays(self.path)
            log.warning("the hash table is not kept for the next scan: %s", error)
