"""When a file that failed is tried again, and when it is given up.

One policy for the two places that retry a file: the indexer, when the backend fails
on it, and the service's queue worker, when indexing it raised an error nobody
expected. Both count a file's failed attempts in its row; the policy turns that count
into "give up now" or "try again in so many seconds" (doubling each time, capped).
"""

from __future__ import annotations

from dataclasses import dataclass

from dupe_scanner.settings import IndexSettings

MAX_RETRY_DELAY = 6 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all; after the n-th failure, wait ``base_seconds * 2**(n-1)``
    (at most ``max_delay``). Built from the index settings at each use, so a settings
    reload takes effect at the next failure."""

    max_attempts: int
    base_seconds: float
    max_delay: float = MAX_RETRY_DELAY

    @staticmethod
    def of(settings: IndexSettings) -> RetryPolicy:
        return RetryPolicy(settings.max_attempts, settings.retry_base_seconds)

    def gives_up(self, attempts: int) -> bool:
        """Whether a file that has now failed ``attempts`` times is failed for good."""
        return attempts >= self.max_attempts

    def delay(self, attempts: int) -> float:
        """Seconds to wait after a file's ``attempts``-th failure."""
        return min(self.base_seconds * 2 ** (attempts - 1), self.max_delay)
