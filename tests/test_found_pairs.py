"""The pairs a scan found, held compactly: what goes in comes out, in order, each key held once."""

from __future__ import annotations

from dupe_scanner.found_pairs import FoundPairs
from dupe_scanner.values import ScoredPair


def _key(n: int) -> str:
    return f"{n:064x}"  # as a worker sends it back: a new string each time


def test_the_pairs_come_out_as_they_went_in():
    pairs = [ScoredPair.of(_key(1), _key(2), 0.9), ScoredPair.of(_key(3), _key(1), 0.0), ScoredPair.of(_key(2), _key(1), 0.6123456789)]
    found = FoundPairs.collect(pairs)
    assert len(found) == 3
    assert list(found) == pairs  # scores exactly, duplicates and order kept
    assert list(found) == pairs  # and it reads again


def test_each_key_is_held_once_however_many_pairs_name_it():
    found = FoundPairs.collect(ScoredPair.of(_key(0), _key(n), 0.1) for n in range(1, 50))
    firsts = {id(pair.first) for pair in found}
    assert len(firsts) == 1


def test_nothing_found_is_empty():
    assert len(FoundPairs.collect([])) == 0 and list(FoundPairs()) == []
