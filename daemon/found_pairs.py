"""The pairs a scan found, held compactly until they are stored.

A scan keeps every verdict of the embedded backend, rejected ones included (grouping must
tell "compared and different" from "never compared"): a first scan of 16,000 pictures found
446,410 pairs. Held as objects (a pair, its two key strings as a worker sent them back, and
the rows built to store them) they took about 450 bytes each, so the list grew with the
library past any memory bound; here each key is held once, and a pair is two key numbers
and its score: 16 bytes.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from dupe_scanner.values import ScoredPair


class FoundPairs:
    """Scored pairs in the order they came, as ``ScoredPair`` again when read."""

    def __init__(self) -> None:
        self._number_of: dict[str, int] = {}
        self._keys: list[str] = []
        self._firsts = array("I")
        self._seconds = array("I")
        self._scores = array("d")

    @classmethod
    def collect(cls, pairs: Iterable[ScoredPair]) -> FoundPairs:
        found = cls()
        for pair in pairs:
            found.add(pair)
        return found

    def add(self, pair: ScoredPair) -> None:
        self._firsts.append(self._number(pair.first))
        self._seconds.append(self._number(pair.second))
        self._scores.append(pair.score)

    def _number(self, key: str) -> int:
        number = self._number_of.get(key)
        if number is None:
            number = self._number_of[key] = len(self._keys)
            self._keys.append(key)
        return number

    def __len__(self) -> int:
        return len(self._scores)

    def __iter__(self) -> Iterator[ScoredPair]:
        keys = self._keys
        for first, second, score in zip(self._firsts, self._seconds, self._scores, strict=True):
            yield ScoredPair(keys[first], keys[second], score)
