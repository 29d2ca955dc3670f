"""Indexing: turn pending files into indexed (or failed-with-reason) ones.

For each pending file: stat it again, hash its bytes, and analyse the content only if no
other file already brought it in (byte-identical copies and moved files cost a hash, not a
decode). A failure on one file is recorded with its reason and the others go on.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from sqlalchemy import Engine

from dupe_scanner.backends.base import Backend
from dupe_scanner.errors import AnalysisFailed, BackendLimitReached, BackendUnavailable, FileVanished, UnreadableImage
from dupe_scanner.retry import RetryPolicy
from dupe_scanner.settings import IndexSettings
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import read_transaction, write_transaction
from dupe_scanner.store.files import FileStat, KnownFile

log = logging.getLogger(__name__)

CHANGING_RETRY_DELAY = 2.0


class Outcome(Enum):
    ANALYSED = "analysed"  # decoded and analysed by the backend
    REUSED = "reused"  # same bytes already analysed: only hashed
    FAILED = "failed"  # permanently, with a reason
    RETRY = "retry"  # left pending for later (backend down, file still changing)
    VANISHED = "vanished"
    STOPPED = "stopped"  # not attempted: the run was stopped


@dataclass
class IndexSummary:
    counts: dict[Outcome, int] = field(default_factory=lambda: {outcome: 0 for outcome in Outcome})
    stopped_because: str | None = None

    @property
    def done(self) -> int:
        return self.counts[Outcome.ANALYSED] + self.counts[Outcome.REUSED]

    def line(self) -> str:
        parts = [f"{self.counts[o]} {o.value}" for o in Outcome if self.counts[o]]
        return ", ".join(parts) or "nothing to do"


def content_hash(path: Path) -> str:
    """The SHA-256 of the file's bytes. Never blocks on a FIFO or reads a device."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb") as handle:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            raise UnreadableImage(f"{path}: not a regular file ({_file_kind(kind)})")
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a device"


class Indexer:
    """Moves files from pending to indexed through ``backend``. Thread-safe."""

    def __init__(self, engine: Engine, backend: Backend, settings: IndexSettings, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.backend = backend
        self.settings = settings
        self.clock = clock
        self._analysing: dict[str, threading.Lock] = {}
        self._analysing_guard = threading.Lock()

    @contextmanager
    def _one_analysis_per_content(self, digest: str) -> Iterator[None]:
        """Copies hashed at once wait for the first one's analysis, then reuse it."""
        with self._analysing_guard:
            lock = self._analysing.setdefault(digest, threading.Lock())
        with lock:
            yield
        with self._analysing_guard:
            if self._analysing.get(digest) is lock and not lock.locked():
                del self._analysing[digest]

    def process(self, job: KnownFile) -> Outcome:
        """Index one pending file. Raises BackendLimitReached; everything else is recorded."""
        path = Path(job.path)
        try:
            return self._index(job, path)
        except FileVanished:
            return self._vanished(job)
        except (UnreadableImage, AnalysisFailed) as error:
            return self._failed(job, str(error))
        except BackendUnavailable as error:
            return self._retry(job, str(error))
        except BackendLimitReached:
            raise
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR):  # gone between listing and reading
                return self._vanished(job)
            return self._failed(job, f"{path}: cannot be read: {error.strerror or error}")

    def _index(self, job: KnownFile, path: Path) -> Outcome:
        before = FileStat.of(os.stat(path))
        digest = content_hash(path)
        after = FileStat.of(os.stat(path))
        if not before.same_content_as(after):
            return self._still_changing(job, after)
        with self._one_analysis_per_content(digest):
            return self._record(job, path, digest, after)

    def _record(self, job: KnownFile, path: Path, digest: str, after: FileStat) -> Outcome:
        with read_transaction(self.engine) as connection:
            known = content_store.has_content(connection, digest)
        outcome = Outcome.REUSED
        if not known:
            info = self.backend.index(digest, path)
            outcome = Outcome.ANALYSED
        now = self.clock()
        with write_transaction(self.engine) as connection:
            if not known:
                content_store.record_content(connection, digest, info, now)
            elif not content_store.has_content(connection, digest):
                return Outcome.RETRY  # the content was forgotten meanwhile; index it again next round
            if not file_store.mark_indexed(connection, job, digest, after, now):
                # Deleted, moved or rewritten while it was analysed: the row says what
                # happened since (gone, or pending again with the new size and time).
                return Outcome.VANISHED
        return outcome

    def _still_changing(self, job: KnownFile, stat: FileStat) -> Outcome:
        with write_transaction(self.engine) as connection:
            file_store.mark_seen(connection, job.path, stat, self.clock())
            file_store.defer(connection, [job.path], self.clock() + CHANGING_RETRY_DELAY)
        return Outcome.RETRY

    def _vanished(self, job: KnownFile) -> Outcome:
        with write_transaction(self.engine) as connection:
            file_store.mark_gone(connection, [job.path], self.clock())
        return Outcome.VANISHED

    def _failed(self, job: KnownFile, reason: str) -> Outcome:
        log.warning("cannot index %s", reason)
        with write_transaction(self.engine) as connection:
            file_store.mark_failed(connection, job, reason, self.clock())
        return Outcome.FAILED

    def _retry(self, job: KnownFile, reason: str) -> Outcome:
        if not self.backend.health().reachable:
            # The backend is down, which is not this file's fault: it waits without
            # using up its attempts, and is done once the backend is back.
            with write_transaction(self.engine) as connection:
                file_store.retry_later(connection, job, reason, self.clock() + self.settings.retry_base_seconds, count=False)
            return Outcome.RETRY
        attempts = job.attempts + 1
        policy = RetryPolicy.of(self.settings)
        if policy.gives_up(attempts):
            return self._failed(job, f"{reason} (gave up after {attempts} attempts)")
        with write_transaction(self.engine) as connection:
            file_store.retry_later(connection, job, reason, self.clock() + policy.delay(attempts))
        return Outcome.RETRY

    def run(self, jobs: Iterable[KnownFile], on_done: Callable[[KnownFile, Outcome], None] | None = None) -> IndexSummary:
        """Index ``jobs`` on ``settings.worker_count`` threads; the backend spreads the CPU work."""
        summary = IndexSummary()
        stop = threading.Event()
        jobs = list(jobs)

        def work(job: KnownFile) -> Outcome:
            if stop.is_set():
                return Outcome.STOPPED
            try:
                return self.process(job)
            except BackendLimitReached as error:
                if not stop.is_set():
                    summary.stopped_because = str(error)
                stop.set()
                return Outcome.STOPPED
            except BaseException:
                stop.set()  # the state is unusable (full disk, held lock): the other jobs would fail alike
                raise

        # Twice the analysis workers: while one thread waits for its image to be analysed,
        # another hashes the next file, so the backend's processes never sit idle.
        with ThreadPoolExecutor(2 * self.settings.worker_count, thread_name_prefix="indexer") as pool:
            futures = {pool.submit(work, job): job for job in jobs}
            try:
                for future in as_completed(futures):
                    outcome = future.result()
                    summary.counts[outcome] += 1
                    if on_done is not None:
                        on_done(futures[future], outcome)
            except BaseException:
                stop.set()  # interrupted (Ctrl-C, SIGTERM): the files not started yet stay pending
                raise
        if summary.stopped_because:
            self._note_stopped(jobs, summary.stopped_because)
        try:
            self.backend.commit()
        except BackendUnavailable as error:
            # What was indexed stays indexed; the next commit (or scan) makes it visible.
            log.warning("could not commit the backend's new documents yet: %s", error)
        return summary

    def _note_stopped(self, jobs: list[KnownFile], reason: str) -> None:
        with write_transaction(self.engine) as connection:
            file_store.note_waiting(connection, [job.id for job in jobs], f"not indexed: {reason}")
