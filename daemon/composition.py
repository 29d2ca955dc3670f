"""The one place where the parts are built from the settings and wired together.

The command line and the service both get their state, backend and indexer from here;
nothing below this module reads settings it was not handed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from dupe_scanner.backends.base import Backend
from dupe_scanner.indexer import Indexer
from dupe_scanner.settings import Settings
from dupe_scanner.store import LOCK_WAIT_SECONDS
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import open_state, read_transaction, state_errors, write_transaction

log = logging.getLogger(__name__)

BACKEND_KEY = "backend"


@dataclass
class Components:
    settings: Settings
    engine: Engine
    backend: Backend
    indexer: Indexer


def backend_identity(settings: Settings) -> str:
    """What the analyses in the state belong to; another identity means analysing again."""
    if settings.backend.kind == "flow":
        return f"flow {settings.backend.flow.url} {settings.backend.flow.collection}"
    return "embedded"


def backend_compares_every_pair(settings: Settings) -> bool:
    """Whether the configured backend compares every pair (see ``Backend.compares_every_pair``),
    without building it: grouping from the state needs only this."""
    if settings.backend.kind == "flow":
        from dupe_scanner.backends.flow import FlowBackend

        return FlowBackend.compares_every_pair
    from dupe_scanner.backends.embedded import EmbeddedBackend

    return EmbeddedBackend.compares_every_pair


def build_backend(settings: Settings, engine: Engine) -> Backend:
    if settings.backend.kind == "flow":
        from dupe_scanner.backends.flow import FlowBackend

        # The indexer runs two threads per worker; each may hold a pooled connection.
        return FlowBackend(
            settings.backend.flow,
            settings.scan.mode,
            pool_size=2 * settings.index.worker_count + 4,
            max_image_pixels=settings.index.max_image_pixels,
        )
    from dupe_scanner.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(
        engine,
        workers=settings.index.worker_count,
        max_image_pixels=settings.index.max_image_pixels,
        keypoint_file=settings.paths.state.with_name(settings.paths.state.name + ".keypoints"),
        hash_file=settings.paths.state.with_name(settings.paths.state.name + ".hashes"),
    )


def adopt_backend(engine: Engine, settings: Settings) -> None:
    """When the configured backend differs from the one that filled the state, index again."""
    identity = backend_identity(settings)
    with read_transaction(engine) as connection:
        if content_store.get_meta(connection, BACKEND_KEY) == identity:
            return  # the usual case needs no write lock, so `status` works while another process writes
    with write_transaction(engine) as connection:
        previous = content_store.get_meta(connection, BACKEND_KEY)
        if previous == identity:
            return
        if previous is not None:
            content_store.delete_all_contents(connection)
            requeued = file_store.requeue_all(connection, time.time())
            log.warning("backend changed from %s to %s: %d files will be indexed again", previous, identity, requeued)
        content_store.set_meta(connection, BACKEND_KEY, identity)


def refresh_outdated(engine: Engine, backend: Backend) -> None:
    """Contents analysed by an older analyser version go back to the queue."""
    outdated = backend.outdated()
    if not outdated:
        return
    with write_transaction(engine) as connection:
        requeued = file_store.requeue_contents(connection, outdated, time.time())
        content_store.delete_contents(connection, outdated)
    log.warning("the analysis changed since %d images were indexed: they will be indexed again", requeued)


@contextmanager
def components(
    settings: Settings, clock: Callable[[], float] = time.time, *, lock_wait: float = LOCK_WAIT_SECONDS
) -> Iterator[Components]:
    """Open the state, the backend and the indexer; close them all on the way out.

    Contents analysed by an older analyser version are queued again here, so whoever
    builds the parts (a command, the service) gets them analysed anew. ``lock_wait``: the
    seconds a unit of work waits for a lock another process holds (``open_state``)."""
    engine = open_state(settings.paths.state, lock_wait)
    backend = None
    try:
        # A full disk or a lock held too long, mid-way: every unit of work is its own
        # transaction, so what was done is kept and the rest is done by the next run.
        with state_errors(settings.paths.state, lock_wait):
            adopt_backend(engine, settings)
            backend = build_backend(settings, engine)
            refresh_outdated(engine, backend)
            yield Components(settings, engine, backend, Indexer(engine, backend, settings.index, clock=clock))
    finally:
        if backend is not None:
            backend.close()
        engine.dispose()


@contextmanager
def state_only(settings: Settings, *, lock_wait: float = LOCK_WAIT_SECONDS) -> Iterator[Engine]:
    """Just the state, for commands that need no backend (decisions, apply, undo)."""
    engine = open_state(settings.paths.state, lock_wait)
    try:
        with state_errors(settings.paths.state, lock_wait):
            yield engine
    finally:
        engine.dispose()
