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

The table is kept as a *base*, written whole, and a *delta* beside it (``.delta``): the rows
added or analysed again since the base was written, and the keys of base rows let go of. A
scan that adds a picture or forgets one writes the delta alone, a few kilobytes; the base was
written whole, 136 MB at a million contents, at every such scan, which on a NAS's disk cost
seconds and on its SSD a gigabyte of writes every eight scans. The delta is folded into a new
base once it holds more than a ``DELTA_SHARE``-th of the base's rows, so reading it stays
cheap. The base is mapped from its file, not read (``kept_arrays.read_arrays``): a scan copies
it once, with the delta and its own new rows in.
Each base is written with a new *generation*, and a delta names the generation it applies
to: a base written anew (by compaction, or by a scan that read the state whole) leaves no
delta that applies to it, even if the process died before removing the old one. A delta that
cannot be read makes the table read from the state whole: the base alone would lack its rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import SupportsIndex, overload

import numpy as np

from dupe_scanner.backends.kept_arrays import UNREADABLE, read_arrays, remove_arrays, write_arrays
from dupe_scanner.errors import FileWriteError
from dupe_scanner.fileio import remove_quietly

log = logging.getLogger(__name__)

# The delta is folded into a new base when it holds more rows than a DELTA_SHARE-th of the
# base's (31,000 at a million contents: a 4 MB file read at every scan) and DELTA_FLOOR: the
# base is then written once per growth of about 3 %, not at every scan that changed it.
DELTA_SHARE = 32
DELTA_FLOOR = 4_096
NO_KEYS = np.zeros(0, dtype="S64")
COPY_ROWS = 1 << 16


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

    def spliced(self, gone: np.ndarray, rows: HashTable) -> HashTable:
        """This table without the rows of ``gone`` (S64, in key order) and with ``rows``
        added, or put in place of the rows of the same key; itself when there is nothing to
        take out or add.

        Both tables are in key order, so ``rows`` are placed by binary search and the table
        is copied once: at a million contents a scan of a hundred new ones paid 0.6 to 0.9
        CPU s to sort every key again, and taking rows out, then adding others, copied it
        twice."""
        dropped = np.zeros(len(self), dtype=bool)
        for keys in (gone, rows.keys):
            at, found = self._places(keys)
            dropped[at[found]] = True
        if not len(rows) and not dropped.any():
            return self
        staying = ~dropped
        # Each new row goes after the staying rows of lower keys, and after the new rows before it.
        staying_before = np.concatenate(([0], np.cumsum(staying)))
        new_at = staying_before[np.searchsorted(self.keys, rows.keys)] + np.arange(len(rows))
        is_new = np.zeros(int(staying_before[-1]) + len(rows), dtype=bool)
        is_new[new_at] = True
        old_at, staying_rows = np.flatnonzero(~is_new), np.flatnonzero(staying)

        def spliced_column(old: np.ndarray, new: np.ndarray) -> np.ndarray:
            column = np.empty((len(is_new), *old.shape[1:]), dtype=old.dtype)
            column[new_at] = new
            # A part at a time: the staying rows of a whole column, copied out at once, held
            # 64 MB more at a million contents.
            for start in range(0, len(staying_rows), COPY_ROWS):
                part = slice(start, start + COPY_ROWS)
                column[old_at[part]] = old[staying_rows[part]]
            return column

        return HashTable(
            spliced_column(self.keys, rows.keys), spliced_column(self.hashes, rows.hashes), spliced_column(self.analysed_at, rows.analysed_at)
        )

    def held(self, rows: HashTable) -> np.ndarray:
        """bool[len(rows)]: whether each of ``rows`` (in key order) is in this table, as it is."""
        at, found = self._places(rows.keys)
        held = found.copy()
        held[found] = (self.hashes[at[found]] == rows.hashes[found]).all(axis=1) & (self.analysed_at[at[found]] == rows.analysed_at[found])
        return held

    def holding(self, keys: np.ndarray) -> np.ndarray:
        """bool[len(keys)]: whether this table has a row of each of ``keys`` (S64, in key order)."""
        return self._places(keys)[1]

    def picked(self, chosen: np.ndarray) -> HashTable:
        """The rows where ``chosen`` (bool, one per row) is true."""
        return HashTable(self.keys[chosen], self.hashes[chosen], self.analysed_at[chosen])

    def _places(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each of ``keys`` (in key order) is or would go, and whether it is there."""
        at = np.searchsorted(self.keys, keys)
        found = at < len(self)
        found[found] = self.keys[at[found]] == keys[found]
        return at, found


EMPTY_TABLE = HashTable(NO_KEYS, np.zeros((0, 8), np.uint64), np.zeros(0, np.float64))


@dataclass(frozen=True)
class Delta:
    """What changed since the base was written: rows added or analysed again, base rows let go of."""

    rows: HashTable
    gone: np.ndarray  # S64, in key order: keys of base rows taken out

    def __len__(self) -> int:
        return len(self.rows) + len(self.gone)


NO_DELTA = Delta(EMPTY_TABLE, NO_KEYS)


@dataclass(frozen=True)
class KeptTable:
    """The base and its delta, as read from their files."""

    base: HashTable
    generation: str | None  # None: a base a version before deltas wrote, which no delta applies to
    delta: Delta

    def table(self, delta: Delta | None = None) -> HashTable:
        """The whole table: the base with ``delta`` (by default the one kept) applied."""
        delta = self.delta if delta is None else delta
        return self.base.spliced(delta.gone, delta.rows)

    def with_rows(self, fresh: HashTable) -> Delta:
        """The delta with those of ``fresh`` (in key order) the table does not hold as they are."""
        in_delta = self.delta.rows.holding(fresh.keys)
        held = np.where(in_delta, self.delta.rows.held(fresh), self.base.held(fresh) & ~np.isin(fresh.keys, self.delta.gone))
        if held.all():
            return self.delta
        return Delta(self.delta.rows.spliced(NO_KEYS, fresh.picked(~held)), self.delta.gone)

    def without(self, keys: np.ndarray) -> Delta:
        """The delta with the rows of ``keys`` (S64, in key order) taken out of the table."""
        in_delta, in_base = self.delta.rows.holding(keys), self.base.holding(keys) & ~np.isin(keys, self.delta.gone)
        if not (in_delta.any() or in_base.any()):
            return self.delta
        return Delta(self.delta.rows.spliced(keys[in_delta], EMPTY_TABLE), np.union1d(self.delta.gone, keys[in_base]))


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

    @property
    def delta_path(self) -> Path | None:
        """Where the delta is kept: beside the base, named after it."""
        return None if self.path is None else self.path.with_name(self.path.name + ".delta")

    def table(self, changed: Collection[str] | None, read_all: ReadAll, read_some: ReadSome) -> HashTable:
        """Every content's hashes. ``changed``: the contents analysed since the last scan (it
        read every other), or None when every content is read from the state anyway."""
        kept = self._read() if changed is not None else None
        if kept is not None and changed is not None:
            fresh, count = read_some(changed)
            delta = kept.with_rows(fresh)
            table = kept.table(delta)
            if len(table) == count:
                if delta is not kept.delta:  # the parts of a long scan after the first: nothing new to keep
                    self._keep(kept, delta, table)
                return table
            log.debug("%s: the kept hash table no longer adds up to the state's contents; read again", self.path)
        table = read_all()
        self._write_base(table)
        return table

    def forget(self, keys: Collection[str]) -> None:
        """Take the rows of these contents (forgotten by the state) out of the kept table."""
        kept = self._read() if keys else None
        if kept is None:
            return
        delta = kept.without(np.array(sorted(keys), dtype="S64"))
        if delta is not kept.delta:
            self._keep(kept, delta)

    def clear(self) -> None:
        if self.path is not None and self.delta_path is not None:
            remove_arrays(self.path)
            remove_quietly(self.delta_path)

    def _read(self) -> KeptTable | None:
        if self.path is None or self.delta_path is None:
            return None
        try:
            saved = read_arrays(self.path, mapped=True)
            if str(saved["analyser"]) not in (self.analyser, self._base_label):
                return None
            base = HashTable(saved["keys"], saved["hashes"], saved["analysed_at"])
            generation = str(saved["generation"]) if str(saved["analyser"]) == self._base_label else None
            delta = self._read_delta(generation)
        except FileNotFoundError:
            return None
        except UNREADABLE as error:
            log.info("%s: the kept hash table is unreadable (%s); it is read from the state again", self.path, error)
            return None
        if not all(map(_well_formed, (base, delta.rows))) or delta.gone.dtype != np.dtype("S64"):
            log.info("%s: the kept hash table is malformed; it is read from the state again", self.path)
            return None
        return KeptTable(base, generation, delta)

    def _read_delta(self, generation: str | None) -> Delta:
        """The delta kept for the base of ``generation``; none if there is none for it (a
        base written since, and the process stopped before the old delta was removed)."""
        assert self.delta_path is not None
        try:
            saved = read_arrays(self.delta_path)
        except FileNotFoundError:
            return NO_DELTA
        if str(saved["analyser"]) != self.analyser or generation is None or str(saved["base"]) != generation:
            return NO_DELTA
        return Delta(HashTable(saved["keys"], saved["hashes"], saved["analysed_at"]), saved["gone"])

    def _keep(self, kept: KeptTable, delta: Delta, table: HashTable | None = None) -> None:
        """``delta`` written in place of the kept one, or, grown past its share (or for a base
        no delta applies to), the whole table as a new base."""
        if kept.generation is not None and len(delta) <= max(DELTA_FLOOR, len(kept.base) // DELTA_SHARE):
            self._write_delta(kept.generation, delta)
        else:
            self._write_base(kept.table(delta) if table is None else table)

    @property
    def _base_label(self) -> str:
        """What a base names as its analyser. A version before deltas reads the base alone and
        takes it for the whole table when its count is the state's, as it is after a delta
        that added as many rows as it took out: so a base is named for no analyser such a
        version knows, and it reads the state whole instead."""
        return f"{self.analyser} with a delta"

    def _write_base(self, table: HashTable) -> None:
        arrays = {
            "analyser": np.array(self._base_label), "generation": np.array(uuid.uuid4().hex),
            "keys": table.keys, "hashes": table.hashes, "analysed_at": table.analysed_at,
        }
        if self._written(self.path, arrays) and self.delta_path is not None:
            remove_quietly(self.delta_path)

    def _write_delta(self, generation: str, delta: Delta) -> None:
        rows = delta.rows
        arrays = {
            "analyser": np.array(self.analyser), "base": np.array(generation),
            "keys": rows.keys, "hashes": rows.hashes, "analysed_at": rows.analysed_at, "gone": delta.gone,
        }
        self._written(self.delta_path, arrays)

    def _written(self, path: Path | None, arrays: dict[str, np.ndarray]) -> bool:
        if path is None:
            return False
        try:
            write_arrays(path, arrays)
        except FileWriteError as error:  # a cache; an old file must not outlive the scan that outdated it
            self.clear()
            log.warning("the hash table is not kept for the next scan: %s", error)
            return False
        return True


def _well_formed(table: HashTable) -> bool:
    return table.hashes.shape == (len(table), 8) and table.analysed_at.shape == (len(table),) and table.keys.dtype == np.dtype("S64")
