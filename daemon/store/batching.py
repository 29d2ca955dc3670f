"""Splitting long lists of keys for ``IN (...)`` queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

Item = TypeVar("Item")

# Well under SQLite's limit on bound variables per statement (32,766 since 3.32, 999 before).
BATCH = 500


def batches(items: Iterable[Item], size: int = BATCH) -> Iterator[list[Item]]:
    """``items`` in lists of at most ``size``, in order, read as they are needed (a generator
    of a scan's pairs is never held whole)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
