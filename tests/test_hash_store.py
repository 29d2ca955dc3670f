"""The hash table kept between scans: a scan reads from the state only the contents it
compares, and the whole table whenever the kept one cannot be trusted."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Collection

import numpy as np
import pytest

from dupe_scanner.backends import kept_arrays
from dupe_scanner.backends.hash_store import HashStore, HashTable
from dupe_scanner.errors import FileWriteError


def key(number: int) -> str:
    return hashlib.sha256(str(number).encode()).hexdigest()


class State:
    """Stands for the state's rows: a content's hashes follow from its key, as they follow from its bytes."""

    def __init__(self, numbers: list[int]):
        self.rows = {key(n): (np.full(8, n, np.uint64), float(n)) for n in numbers}
        self.read_whole = 0
        self.read_keys: list[str] = []

    def add(self, number: int, analysed_at: float | None = None) -> str:
        self.rows[key(number)] = (np.full(8, number, np.uint64), float(number if analysed_at is None else analysed_at))
        return key(number)

    def forget(self, number: int) -> None:
        del self.rows[key(number)]

    def _table(self, keys: Collection[str]) -> HashTable:
        keys = list(keys)
        return HashTable.of(keys, np.array([self.rows[k][0] for k in keys]).reshape(-1, 8), np.array([self.rows[k][1] for k in keys]))

    def expected(self) -> HashTable:
        """What a read of the whole state gives, without counting as one."""
        return self._table(self.rows)

    def read_all(self) -> HashTable:
        self.read_whole += 1
        return self._table(self.rows)

    def read_some(self, keys: Collection[str]) -> tuple[HashTable, int]:
        found = [k for k in keys if k in self.rows]
        self.read_keys += found
        return self._table(found), len(self.rows)

    def table(self, store: HashStore, changed: Collection[str] | None) -> HashTable:
        return store.table(changed, self.read_all, self.read_some)


def same(first: HashTable, second: HashTable) -> bool:
    return (
        np.array_equal(first.keys, second.keys)
        and np.array_equal(first.hashes, second.hashes)
        and np.array_equal(first.analysed_at, second.analysed_at)
    )


@pytest.fixture
def store(tmp_path):
    return HashStore(tmp_path / "state.db.hashes", "analyser-1")


def test_a_scan_of_new_contents_reads_only_them_and_gets_the_whole_table(store):
    state = State(list(range(50)))
    state.table(store, None)
    assert state.read_whole == 1
    new = [state.add(50), state.add(51)]
    again = state.add(7, analysed_at=99.0)  # analysed again since: its row is replaced
    table = state.table(store, [*new, again])
    assert state.read_whole == 1 and sorted(state.read_keys) == sorted([*new, again])
    assert same(table, state.expected())
    assert table.key_list() == sorted(state.rows)


def test_a_table_that_already_holds_the_contents_compared_is_not_written_again(store, monkeypatch):
    state = State(list(range(30)))
    state.table(store, None)
    writes: list[int] = []
    write = store._write

    def counted(table: HashTable) -> None:
        writes.append(len(table))
        write(table)

    monkeypatch.setattr(store, "_write", counted)

    assert same(state.table(store, [key(4), key(5)]), state.expected())  # a later part of one scan: read before
    assert writes == []
    state.add(5, analysed_at=77.0)  # analysed again since the table was kept
    assert same(state.table(store, [key(4), key(5)]), state.expected())
    assert writes == [30]


@pytest.mark.parametrize("seed", range(5))
def test_merging_new_and_reanalysed_rows_in_place_gives_the_table_a_whole_read_gives(seed):
    rng = np.random.default_rng(seed)
    numbers = rng.choice(10_000, size=400, replace=False)
    kept, later = numbers[:300], numbers[300:]
    reanalysed = rng.choice(kept, size=20, replace=False)
    state = State(kept.tolist())
    before = state.expected()
    fresh = [state.add(int(n)) for n in later] + [state.add(int(n), analysed_at=-1.0) for n in reanalysed]
    merged = before.merged(state.read_some(fresh)[0])
    assert same(merged, state.expected())
    assert merged.holds(state.read_some(fresh)[0]) and not before.holds(state.read_some(fresh)[0])


def test_rows_taken_out_leave_the_others_as_they_were():
    state = State(list(range(40)))
    table = state.expected()
    in_key_order = sorted(range(40), key=key)
    taken = [in_key_order[0], in_key_order[17], in_key_order[-1]]  # the first row, one inside, the last
    for number in taken:
        state.forget(number)
    gone = np.array(sorted([*map(key, taken), key(99)]), dtype="S64")  # 99: never in the table
    assert same(table.without(gone), state.expected())
    assert table.without(np.array([key(99)], dtype="S64")) is table


def test_a_content_the_store_is_told_was_forgotten_leaves_the_kept_table_and_no_scan_reads_the_state_whole(store):
    state = State(list(range(20)))
    state.table(store, None)
    state.forget(3)
    store.forget([key(3), key(99)])  # 99: never in the table
    table = state.table(store, [state.add(20)])
    assert state.read_whole == 1 and key(3) not in table.key_list()
    assert same(table, state.expected())


def test_a_content_forgotten_untold_makes_the_table_read_whole_again(store):
    state = State(list(range(20)))
    state.table(store, None)
    state.forget(3)  # a crash between the state's forgetting and the store's
    table = state.table(store, [state.add(20)])
    assert state.read_whole == 2 and key(3) not in table.key_list()
    assert same(table, state.expected())


def test_forgetting_what_the_kept_table_does_not_hold_writes_nothing(store, monkeypatch):
    store.forget([key(1)])  # no table kept yet
    assert store.path is not None and not store.path.exists()
    State(list(range(5))).table(store, None)
    monkeypatch.setattr(store, "_write", lambda table: pytest.fail("nothing taken out, nothing to write"))
    store.forget([key(99)])
    store.forget([])


def test_a_scan_by_another_process_that_kept_nothing_is_noticed(store):
    state = State(list(range(20)))
    state.table(store, None)
    state.add(20)  # compared by a scan that did not write the file
    table = state.table(store, [state.add(21)])
    assert state.read_whole == 2 and key(20) in table.key_list()


def test_a_table_of_another_analyser_or_an_unreadable_file_is_read_from_the_state(store, tmp_path, caplog):
    state = State(list(range(10)))
    state.table(store, None)
    HashStore(store.path, "analyser-2").table([state.add(10)], state.read_all, state.read_some)
    assert state.read_whole == 2
    assert store.path is not None
    store.path.write_bytes(b"not a table")
    with caplog.at_level(logging.INFO, logger="dupe_scanner.backends.hash_store"):
        table = state.table(store, [state.add(11)])
    assert state.read_whole == 3 and same(table, state.expected())
    assert "unreadable" in caplog.text
    state.table(store, [state.add(12)])
    assert state.read_whole == 3, "the table written after it is kept, and used"


def test_a_table_that_cannot_be_written_leaves_no_older_one_behind(store, monkeypatch, caplog):
    state = State(list(range(10)))
    state.table(store, None)

    def disk_full(path, write, mode=None):
        raise FileWriteError(f"{path}: no space left on device")

    monkeypatch.setattr(kept_arrays, "atomic_write_stream", disk_full)
    state.table(store, [state.add(10)])
    assert store.path is not None and not store.path.exists()
    assert "not kept for the next scan" in caplog.text


def test_a_table_kept_by_an_earlier_version_is_read_then_replaced_by_the_new_kind(store):
    state = State(list(range(10)))
    state.table(store, None)
    assert store.path is not None
    kept = state.expected()
    legacy = kept_arrays.legacy_file(store.path)
    np.savez(legacy, keys=kept.keys, hashes=kept.hashes, analysed_at=kept.analysed_at, analyser=np.array("analyser-1"))
    store.path.unlink()  # as the earlier version left it: the .npz alone
    table = state.table(store, [state.add(10)])
    assert state.read_whole == 1, "the earlier kind of file is read, not the whole state"
    assert same(table, state.expected())
    assert store.path.exists() and not legacy.exists()


def test_a_table_an_earlier_version_wrote_since_is_the_one_read(store):
    # Run back and forth between versions: the earlier one writes only its .npz, and what it
    # wrote last is what the state holds, not the older file of the new kind beside it.
    state = State(list(range(10)))
    state.table(store, None)
    assert store.path is not None
    state.add(10)
    state.forget(3)  # same count as the file of the new kind: only its age tells it is stale
    newer = state.expected()
    legacy = kept_arrays.legacy_file(store.path)
    np.savez(legacy, keys=newer.keys, hashes=newer.hashes, analysed_at=newer.analysed_at, analyser=np.array("analyser-1"))
    later = store.path.stat().st_mtime_ns + 10**9
    os.utime(legacy, ns=(later, later))
    table = state.table(store, [key(10)])
    assert state.read_whole == 1 and same(table, newer)


def test_a_damaged_table_of_the_earlier_kind_is_read_from_the_state_again(store, caplog):
    assert store.path is not None
    store.path.parent.mkdir(parents=True, exist_ok=True)
    kept_arrays.legacy_file(store.path).write_bytes(b"PK\x03\x04" + b"\x00" * 40)  # a zip's start, then nothing
    state = State(list(range(5)))
    with caplog.at_level(logging.INFO, logger="dupe_scanner.backends.hash_store"):
        table = state.table(store, [state.add(5)])
    assert state.read_whole == 1 and same(table, state.expected()) and "unreadable" in caplog.text


def test_a_write_killed_midway_leaves_no_lasting_temporary_file(store):
    assert store.path is not None
    store.path.parent.mkdir(parents=True, exist_ok=True)
    killed = store.path.with_name(f".{store.path.name}.x1y2z3.tmp")  # as a kill during the write leaves it
    killed.write_bytes(b"half a table")
    hours_ago = time.time() - 2 * 3600
    os.utime(killed, (hours_ago, hours_ago))
    State(list(range(5))).table(store, None)
    assert not killed.exists() and store.path.exists()


def test_without_a_file_every_scan_reads_the_state():
    state = State(list(range(5)))
    store = HashStore(None, "analyser-1")
    state.table(store, None)
    state.table(store, [state.add(5)])
    assert state.read_whole == 2


def test_a_key_column_gives_the_keys_as_strings_as_the_key_list_does():
    keys = [f"{number:064x}" for number in (3, 1, 4, 15, 9, 2, 6)]
    table = HashTable.of(keys, np.zeros((len(keys), 8), np.uint64), np.zeros(len(keys)))

    column, listed = table.key_column(), table.key_list()

    assert len(column) == len(listed) == 7
    assert [column[row] for row in range(7)] == listed
    assert column[np.int64(2)] == listed[2] and column[-1] == listed[-1]
    assert column[1:5] == listed[1:5] and column[::3] == listed[::3]
    assert list(column) == listed
