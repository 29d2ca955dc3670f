"""Watching an embedded backend's verification from a test."""

from __future__ import annotations

from dupe_scanner.backends.embedded import EmbeddedBackend


def verified_by(backend: EmbeddedBackend) -> list[tuple[str, str]]:
    """The pairs the backend gives its workers to verify from now on, as (query, stored picture),
    filled in as they are given; pairs that take a twin's verdict never reach the workers."""
    verified: list[tuple[str, str]] = []
    real_verify = backend._verify

    def counted(batches, total, progress=None):
        def recorded():
            for batch in batches:
                verified.extend((first, second) for first, second, _ in batch)
                yield batch

        return real_verify(recorded(), total, progress)

    backend._verify = counted  # type: ignore[method-assign]
    return verified
