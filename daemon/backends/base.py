"""The one small interface every analysis backend implements.

Backends work on *contents*, not files: a content is identified by the hash of its bytes
(``content_hash``, hex), so byte-identical files are analysed once and a moved file keeps
its analysis. Which files hold which content is the store's business, not the backend's.

Scores are on Flow's scale whichever backend produced them: 1.0 identical, 0.9 and up
an exact duplicate (no visible change), 0.6 the usual near-duplicate threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# The values a backend returns live in dupe_scanner.values (the store uses them too); importable
# from here as before.
from dupe_scanner.values import ImageInfo, ScoredPair

__all__ = ["VERIFIED", "Backend", "Health", "ImageInfo", "PairVerifier", "ScoredPair"]

# A verified pair scores this or more, a rejected one less (the embedded backend: 0.61 and up,
# 0.59 at most; Flow's near-duplicate threshold).
VERIFIED = 0.6


@dataclass(frozen=True)
class Health:
    reachable: bool
    detail: str  # one line for ``status``: what it is, or what is wrong and what to do
    documents: int | None = None  # how many contents the backend holds, where it can tell


class Backend(Protocol):
    kind: str
    # True when every pair missing from ``find_pairs`` is known to score below its
    # ``min_score`` (the backend compares every pair); False when it compares only the
    # candidates it proposes, and so reports the ones it rejected too (see find_pairs).
    compares_every_pair: bool
    # Names how pairs are scored; when it changes, the stored pairs are scored again.
    comparison: str

    def health(self) -> Health:
        """Is the backend usable now? Never raises."""

    def index(self, content_hash: str, path: Path) -> ImageInfo:
        """Analyse the image at ``path`` and remember it under ``content_hash``.

        Indexing the same content again replaces, never duplicates. Safe to call from
        several threads at once. Raises UnreadableImage (permanent for these bytes),
        AnalysisFailed (decoded, but the analysis broke on it: permanent for these bytes
        and this analyser), FileVanished, BackendUnavailable (retry later) or BackendLimitReached.
        """

    def forget(self, content_hashes: Collection[str]) -> None:
        """Drop these contents from the backend (their last file is gone)."""

    def commit(self) -> None:
        """Make everything indexed so far visible to ``find_pairs``."""

    def find_pairs(
        self,
        changed: Collection[str] | None,
        min_score: float,
        progress: Callable[[str, int, int], None] | None = None,
        pending: Collection[str] | None = None,
    ) -> Iterator[ScoredPair]:
        """Pairs scoring at least ``min_score``; ``progress(step, done, total)`` is told how it goes.

        ``changed=None`` compares everything; otherwise only pairs in which at least one
        side is in ``changed`` are needed (an incremental scan). A backend that does not
        compare every pair also yields the pairs it compared and found different, with
        their lower score: grouping must know "different" from "never compared".

        ``pending``: when ``changed`` is the first part of the contents awaiting comparison,
        all of them, in the order they were analysed; the rest will be asked for later. A
        backend that asks each pair from one side only (the embedded one: the newer) asks
        none of a part's pairs with the later parts from the part's side, so the parts
        together find what one comparison of them all finds. The pairs the state holds
        between two contents not awaiting comparison are this comparison's verdicts (the
        embedded backend's twins take them: dupe_scanner.analysis.twins).
        """

    def outdated(self) -> set[str]:
        """Contents analysed by an older version of this backend's analysis: to index again."""

    def clear(self) -> None:
        """Forget every content."""

    def close(self) -> None:
        """Release threads, processes and connections."""


@runtime_checkable
class PairVerifier(Protocol):
    """A backend that can be asked about given pairs, not only find its own (the embedded one).

    A backend that compares every pair (Flow) has nothing to add: a pair it did not report
    is far apart already.
    """

    def verify_pairs(self, pairs: Sequence[tuple[str, str]]) -> Iterator[ScoredPair]:
        """The score of each of these pairs of contents, rejected ones included, each asked from
        its first content's side; a pair with a content the backend no longer holds, or whose
        fingerprint is damaged, is left out."""

    def tightens(self, comparison: str) -> bool:
        """Whether this backend's ``comparison`` differs from ``comparison`` (the one that found
        the stored pairs) only by rejecting some pairs that one verified: then the stored pairs
        scoring ``VERIFIED`` or more, scored again, make them this comparison's, and no picture
        needs comparing again (``scanning.rejudge_verified``)."""
