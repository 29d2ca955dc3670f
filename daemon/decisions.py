"""Decisions a person made about duplicates, as plain data the grouping and the keep rules read.

A decision names contents (hashes of the bytes), not paths, so it holds wherever the
files move. ``path`` is where a file was when the decision was made: shown in listings,
and the file preferred among byte-identical copies of a kept content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

from dupe_scanner.store.schema import KEEP, NOT_DUPLICATES


@dataclass(frozen=True)
class DecidedContent:
    content_hash: str
    path: str


@dataclass(frozen=True)
class Decision:
    id: int
    kind: str  # KEEP or NOT_DUPLICATES
    made_at: float
    source: str
    contents: tuple[DecidedContent, ...]

    @property
    def hashes(self) -> frozenset[str]:
        return frozenset(content.content_hash for content in self.contents)


@dataclass(frozen=True)
class Decisions:
    """Every decision in force, with the views grouping and keeping need."""

    all: tuple[Decision, ...] = ()

    def forbidden_pairs(self) -> frozenset[frozenset[str]]:
        """Pairs of contents declared not duplicates of each other."""
        return frozenset(
            frozenset(pair)
            for decision in self.all
            if decision.kind == NOT_DUPLICATES
            for pair in combinations(sorted(decision.hashes), 2)
        )

    def kept(self) -> dict[str, str]:
        """Content hash to keep, with the path it was decided on (the newest decision wins)."""
        return self._kept

    def touching(self, hashes: Iterable[str]) -> list[Decision]:
        """The decisions that name any of ``hashes``, oldest first."""
        found = {position: decision for digest in hashes for position, decision in self._naming.get(digest, ())}
        return [found[position] for position in sorted(found)]

    # Read once per scan for every group: worked out once, not per group.
    @cached_property
    def _kept(self) -> dict[str, str]:
        return {
            content.content_hash: content.path
            for decision in sorted(self.all, key=lambda d: d.id)
            if decision.kind == KEEP
            for content in decision.contents
        }

    @cached_property
    def _naming(self) -> dict[str, list[tuple[int, Decision]]]:
        """Each content's decisions, with their positions in ``all``."""
        naming: dict[str, list[tuple[int, Decision]]] = {}
        for position, decision in enumerate(self.all):
            for digest in decision.hashes:
                naming.setdefault(digest, []).append((position, decision))
        return naming
