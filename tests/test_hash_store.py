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

from dupe_scanner.backends import hash_store, kept_arrays
from dupe_scanner.backends.hash_store import HashStore, HashTable
from dupe_scanner.errors import FileWriteError


def key(number: int) -> str:
    return hashlib.sha256(str(number).encode()).hexdigest()


class State:
    """Stands for the state's rows: a content's hashes follow from its key, as they follow from its bytes."""

    def __init__(self, numbers: list[int]):
        self.rows = {key(n): (np.full(8, n, np.uint64), float(n)) for n in numbers}
        self.numbers_held = set(numbers)
        self.read_whole = 0
        self.read_keys: list[str] = []

    def add(self, number: int, analysed_at: float | None = None) -> str:
        self.rows[key(number)] = (np.full(8, number, np.uint64), float(number if analysed_at is None else analysed_at))
        self.numbers_held.add(number)
        return key(number)

    def forget(self, number: int) -> None:
        del self.rows[key(number)]
        self.numbers_held.discard(number)

    def numbers(self) -> list[int]:
        return sorted(self.numbers_held)

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


@pytest.fixture
def writes(monkeypatch) -> list[tuple[str, int]]:
    """Each file the store writes: its name and how many rows it holds."""
    written: list[tuple[str, int]] = []
    write = hash_store.write_arrays

    def counted(path, arrays):
        written.append((path.name, len(arrays["keys"])))
        write(path, arrays)

    monkeypatch.setattr(hash_store, "write_arrays", counted)
    return written


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


def test_a_table_that_already_holds_the_contents_compared_is_not_written_again(store, writes):
    state = State(list(range(30)))
    state.table(store, None)
    writes.clear()

    assert same(state.table(store, [key(4), key(5)]), state.expected())  # a later part of one scan: read before
    assert writes == []
    state.add(5, analysed_at=77.0)  # analysed again since the table was kept
    assert same(state.table(store, [key(4), key(5)]), state.expected())
    assert writes == [("state.db.hashes.delta", 1)]


@pytest.mark.parametrize("seed", range(5))
def test_splicing_in_new_and_reanalysed_rows_and_taking_out_others_gives_the_table_a_whole_read_gives(seed):
    rng = np.random.default_rng(seed)
    numbers = rng.choice(10_000, size=400, replace=False)
    kept, later = numbers[:300], numbers[300:]
    reanalysed, taken = rng.choice(kept, size=40, replace=False).reshape(2, 20)
    state = State(kept.tolist())
    before = state.expected()
    fresh = [state.add(int(n)) for n in later] + [state.add(int(n), analysed_at=-1.0) for n in reanalysed]
    for number in taken:
        state.forget(int(number))
    gone = np.array(sorted([*(key(int(n)) for n in taken), key(20_000)]), dtype="S64")  # 20,000: never in the table
    spliced = before.spliced(gone, state.read_some(fresh)[0])
    assert same(spliced, state.expected())
    assert spliced.held(state.read_some(fresh)[0]).all() and not before.held(state.read_some(fresh)[0]).all()


def test_rows_taken_out_leave_the_others_as_they_were():
    state = State(list(range(40)))
    table = state.expected()
    in_key_order = sorted(range(40), key=key)
    taken = [in_key_order[0], in_key_order[17], in_key_order[-1]]  # the first row, one inside, the last
    for number in taken:
        state.forget(number)
    gone = np.array(sorted([*map(key, taken), key(99)]), dtype="S64")  # 99: never in the table
    assert same(table.spliced(gone, State([]).expected()), state.expected())
    assert table.spliced(np.array([key(99)], dtype="S64"), State([]).expected()) is table


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


def test_forgetting_what_the_kept_table_does_not_hold_writes_nothing(store, writes):
    store.forget([key(1)])  # no table kept yet
    assert store.path is not None and not store.path.exists()
    State(list(range(5))).table(store, None)
    store.forget([key(3)])
    writes.clear()
    store.forget([key(99)])
    store.forget([key(3)])  # already taken out
    store.forget([])
    assert writes == []


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


def stamp(path) -> tuple[int, int]:
    status = path.stat()
    return status.st_ino, status.st_mtime_ns


def test_a_scan_that_adds_or_forgets_contents_writes_the_delta_alone(store, writes):
    state = State(list(range(50)))
    state.table(store, None)
    assert store.path is not None and store.delta_path is not None
    base = stamp(store.path)

    state.forget(8)
    store.forget([key(8)])
    state.table(store, [state.add(50), state.add(51), state.add(7, analysed_at=99.0)])

    assert [name for name, _ in writes] == ["state.db.hashes", "state.db.hashes.delta", "state.db.hashes.delta"]
    assert stamp(store.path) == base and store.delta_path.stat().st_size < store.path.stat().st_size
    later = HashStore(store.path, "analyser-1")  # the next scan, another process
    assert same(state.table(later, [state.add(52)]), state.expected())
    assert state.read_whole == 1


def test_a_content_forgotten_then_analysed_again_is_back_in_the_table(store):
    state = State(list(range(20)))
    state.table(store, None)
    state.forget(4)
    store.forget([key(4)])
    assert same(state.table(store, [state.add(4, analysed_at=50.0)]), state.expected())
    state.forget(4)
    store.forget([key(4)])
    assert same(state.table(store, [state.add(20)]), state.expected())
    assert state.read_whole == 1


def test_the_delta_is_folded_into_a_new_base_once_it_outgrows_its_share(store, writes, monkeypatch):
    monkeypatch.setattr(hash_store, "DELTA_FLOOR", 4)
    state = State(list(range(40)))
    state.table(store, None)
    assert store.delta_path is not None
    state.table(store, [state.add(40), state.add(41), state.add(42)])
    assert writes[-1] == ("state.db.hashes.delta", 3)
    state.table(store, [state.add(43), state.add(44)])  # five rows: past the floor of four
    assert writes[-1] == ("state.db.hashes", 45) and not store.delta_path.exists()
    assert same(state.table(store, [state.add(45)]), state.expected())
    assert writes[-1] == ("state.db.hashes.delta", 1) and state.read_whole == 1


def test_a_delta_left_beside_a_base_written_since_is_not_applied(store, monkeypatch):
    monkeypatch.setattr(hash_store, "DELTA_FLOOR", 2)
    state = State(list(range(20)))
    state.table(store, None)
    assert store.delta_path is not None
    state.forget(3)
    store.forget([key(3)])
    old_delta = store.delta_path.read_bytes()  # content 3 taken out
    state.table(store, [state.add(3), state.add(20), state.add(21)])  # a new base, with 3, and the old delta removed...
    store.delta_path.write_bytes(old_delta)  # ...or not: the process stopped in between
    assert same(state.table(store, [state.add(22)]), state.expected())
    assert state.read_whole == 1, "the old delta would take content 3 out again"


def test_a_delta_that_cannot_be_read_makes_the_table_read_from_the_state(store, caplog):
    state = State(list(range(20)))
    state.table(store, None)
    state.table(store, [state.add(20)])
    assert store.delta_path is not None
    store.delta_path.write_bytes(b"not a delta")
    with caplog.at_level(logging.INFO, logger="dupe_scanner.backends.hash_store"):
        table = state.table(store, [state.add(21)])
    assert state.read_whole == 2 and same(table, state.expected()) and "unreadable" in caplog.text


def test_a_base_kept_before_deltas_is_written_anew_at_its_first_change(store, writes):
    state = State(list(range(10)))
    assert store.path is not None
    store.path.parent.mkdir(parents=True, exist_ok=True)
    kept = state.expected()
    without_generation = {"analyser": np.array("analyser-1"), "keys": kept.keys, "hashes": kept.hashes, "analysed_at": kept.analysed_at}
    kept_arrays.write_arrays(store.path, without_generation)
    state.table(store, [state.add(10)])
    state.table(store, [state.add(11)])
    assert writes == [("state.db.hashes", 11), ("state.db.hashes.delta", 1)]
    assert state.read_whole == 0


def test_a_delta_that_cannot_be_written_leaves_no_kept_table_behind(store, monkeypatch, caplog):
    state = State(list(range(10)))
    state.table(store, None)
    write = kept_arrays.atomic_write_stream

    def delta_disk_full(path, write_to, mode=None):
        if path.name.endswith(".delta"):
            raise FileWriteError(f"{path}: no space left on device")
        write(path, write_to, mode)

    monkeypatch.setattr(kept_arrays, "atomic_write_stream", delta_disk_full)
    state.table(store, [state.add(10)])
    assert store.path is not None and not store.path.exists()
    assert "not kept for the next scan" in caplog.text


@pytest.mark.parametrize("seed", range(4))
def test_scan_after_scan_of_new_reanalysed_and_forgotten_contents_the_table_is_a_whole_read(store, monkeypatch, seed):
    monkeypatch.setattr(hash_store, "DELTA_FLOOR", 12)
    rng = np.random.default_rng(seed)
    state = State(list(range(100)))
    state.table(store, None)
    next_number = 100
    for _ in range(12):
        forgotten = [int(n) for n in rng.choice(state.numbers(), size=rng.integers(0, 4), replace=False)]
        for number in forgotten:
            state.forget(number)
        store.forget([key(n) for n in forgotten])
        changed = [state.add(next_number + n) for n in range(rng.integers(0, 5))]
        next_number += len(changed)
        changed += [state.add(int(n), analysed_at=float(rng.integers(1000))) for n in rng.choice(state.numbers(), size=2, replace=False)]
        changed += [state.add(n) for n in forgotten[:1]]  # a content let go of, then back
        later = HashStore(store.path, "analyser-1")
        assert same(state.table(later, set(changed)), state.expected())
    assert state.read_whole == 1


def test_large_arrays_are_mapped_from_the_file_and_read_as_a_plain_read_gives(tmp_path):
    path = tmp_path / "kept"
    large = np.arange(kept_arrays.MAPPED_BYTES // 8 * 3, dtype=np.uint64).reshape(-1, 3)  # a C-ordered 2-d array
    arrays = {
        "small": np.array("analyser-1"), "large": large, "fortran": np.asfortranarray(large[:1000]), "keys": np.array([b"a" * 64] * 5, dtype="S64"),
    }
    kept_arrays.write_arrays(path, arrays)

    read, mapped = kept_arrays.read_arrays(path), kept_arrays.read_arrays(path, mapped=True)

    for name, array in arrays.items():
        assert np.array_equal(read[name], array) and np.array_equal(mapped[name], array) and mapped[name].dtype == array.dtype
    assert not mapped["large"].flags.writeable and not mapped["large"].flags.owndata, "mapped, not read"
    assert mapped["small"].flags.writeable, "a small array is read"


@pytest.mark.parametrize("cut", [100, kept_arrays.MAPPED_BYTES // 2])
def test_a_kept_file_cut_short_is_unreadable_when_mapped(tmp_path, cut):
    path = tmp_path / "kept"
    kept_arrays.write_arrays(path, {"small": np.arange(10), "large": np.zeros(kept_arrays.MAPPED_BYTES, np.uint8)})
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - kept_arrays.MAPPED_BYTES + cut)  # the large record cut short

    with pytest.raises(kept_arrays.UNREADABLE):
        kept_arrays.read_arrays(path, mapped=True)


def test_a_table_whose_base_was_replaced_while_mapped_is_still_whole(store, monkeypatch):
    monkeypatch.setattr(kept_arrays, "MAPPED_BYTES", 64)  # the small test table mapped as a large one is
    state = State(list(range(30)))
    state.table(store, None)
    mapped = state.table(store, [key(3)])  # nothing new: the base itself, mapped
    assert not mapped.hashes.flags.owndata
    state.table(HashStore(store.path, "analyser-1"), None)  # another scan reads the state whole and writes a new base
    state.forget(3)
    assert mapped.key_list() == sorted([*state.rows, key(3)])
    assert same(mapped.spliced(np.array([key(3)], dtype="S64"), State([]).expected()), state.expected())


def test_a_version_before_deltas_does_not_take_a_base_with_a_delta_for_the_whole_table(store):
    state = State(list(range(20)))
    state.table(store, None)
    state.forget(3)
    store.forget([key(3)])
    state.table(store, [state.add(20)])  # as many rows added as taken out: the base alone counts as the state
    assert store.path is not None

    base = kept_arrays.read_arrays(store.path)

    assert len(base["keys"]) == len(state.rows)
    assert str(base["analyser"]) != "analyser-1", "such a version checks the analyser, then the count, and would use the base alone"
