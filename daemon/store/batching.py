"""Splitting long lists of keys for ``IN (...)`` queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

# Well under SQLite's limit on bound variables per statement (32,766 since 3.32, 999 before).
BATCH = 500


def batches(items: Iterable[Item], size: int = BATCH) -> Iterator[list[Item]]:
    """``items`` in lists of at most ``size``, in order."""
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]
