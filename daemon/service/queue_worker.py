"""The queue stage: pending rows in, indexed (or failed, or retried) rows out.

``QueueWorker`` runs on its own thread and feeds the pending rows to the lead's
``Indexer`` on a thread pool, at most ``index.workers`` files at once. The intake and
the reconcile walk ``wake`` it when they mark rows pending; the life cycle (``app``)
starts and stops it, the live settings change its capacity, and the heartbeat
(``health``) restarts its thread if it died. ``IndexingLog`` is what it calls with each
file's outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from sqlalchemy import Engine

from dupe_scanner.errors import BackendLimitReached, StateError, is_bug
from dupe_scanner.indexer import Indexer, Outcome
from dupe_scanner.retry import RetryPolicy
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import read_transaction, write_transaction
from dupe_scanner.store.files import KnownFile

log = logging.getLogger("dupe_scanner.service")

PROGRESS_SECONDS = 30.0  # a summary line during large imports, not a line per file
LIMIT_PAUSE_SECONDS = 600.0  # the backend refused more documents: try again after this
IDLE_QUEUE_CHECK_SECONDS = 30.0
STATE_PAUSE_SECONDS = 5.0  # the state database failed (locked, full): indexing waits this long


class QueueWorker:
    """Drains the pending rows: at most ``capacity`` files in the indexer at once.

    A file is in flight on one thread only; SIGTERM lets in-flight files finish (within
    the grace time) and leaves the others pending, as they are in the state.
    """

    def __init__(
        self,
        engine: Engine,
        indexer: Indexer,
        capacity: int,
        on_outcome: Callable[[KnownFile, Outcome], None],
        clock: Callable[[], float] = time.time,
    ):
        self.engine = engine
        self.indexer = indexer
        self.capacity = max(1, capacity)
        self._on_outcome = on_outcome
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="index")
        self._pool_size = self.capacity
        self._in_flight: dict[int, Future] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._life = threading.Lock()  # start and stop one at a time
        self._paused_until = 0.0
        self._thread: threading.Thread | None = None
        self.last_beat = time.monotonic()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> None:
        """Start (again, if the thread died); once stopped, never again: the heartbeat may
        find the thread gone while the service stops."""
        with self._life:
            if self._stopping.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="queue", daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def set_capacity(self, capacity: int) -> None:
        capacity = max(1, capacity)
        if capacity > self._pool_size:
            old, self._pool = self._pool, ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="index")
            self._pool_size = capacity
            old.shutdown(wait=False)
        self.capacity = capacity
        self.wake()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.last_beat = time.monotonic()
            try:
                timeout = self._fill()
            except Exception as error:
                log.error("the queue worker could not read the queue: %s; trying again shortly", error,
                          exc_info=is_bug(error))
                timeout = 5.0
            self._wake.wait(timeout)
            self._wake.clear()

    def _fill(self) -> float:
        """Start due files while there is room; returns how long to sleep."""
        for file_id, future in list(self._in_flight.items()):
            if future.done():
                del self._in_flight[file_id]
        now = self._clock()
        if now < self._paused_until:
            return min(self._paused_until - now, IDLE_QUEUE_CHECK_SECONDS)
        room = self.capacity - len(self._in_flight)
        if room > 0:
            with read_transaction(self.engine) as connection:
                jobs = file_store.due(connection, now, room, exclude_ids=self._in_flight)
            for job in jobs:
                future = self._pool.submit(self._process, job)
                self._in_flight[job.id] = future
                future.add_done_callback(lambda _future: self._wake.set())
        if self._in_flight:
            return 1.0
        with read_transaction(self.engine) as connection:
            next_at = file_store.next_attempt_at(connection)
        if next_at is None:
            return IDLE_QUEUE_CHECK_SECONDS
        return min(max(next_at - self._clock(), 0.05), IDLE_QUEUE_CHECK_SECONDS)

    def _process(self, job: KnownFile) -> None:
        if self._stopping.is_set():
            return
        try:
            outcome = self.indexer.process(job)
        except BackendLimitReached as error:
            self._paused_until = self._clock() + LIMIT_PAUSE_SECONDS
            log.error("%s; indexing paused for %d minutes", error, LIMIT_PAUSE_SECONDS // 60)
            with write_transaction(self.engine) as connection:
                file_store.note_waiting(connection, [job.id], f"not indexed: {error}")
            return
        except StateError as error:  # not the file's fault: it stays pending for when the state answers
            self._paused_until = self._clock() + STATE_PAUSE_SECONDS
            log.error("indexing %s: %s", job.path, error)
            return
        except Exception as error:  # a bug: keep the file, try again later, never spin
            log.exception("indexing %s failed unexpectedly", job.path)
            self._defer_after_bug(job, error)
            return
        try:
            self._on_outcome(job, outcome)
        except Exception:
            log.exception("recording the outcome for %s failed", job.path)

    def _defer_after_bug(self, job: KnownFile, error: Exception) -> None:
        policy = RetryPolicy.of(self.indexer.settings)
        attempts = job.attempts + 1
        reason = f"internal error: {type(error).__name__}: {error}"
        try:
            with write_transaction(self.engine) as connection:
                if policy.gives_up(attempts):
                    file_store.mark_failed(connection, job, reason, self._clock())
                else:
                    file_store.retry_later(connection, job, reason, self._clock() + policy.delay(attempts))
        except Exception as recording:
            log.error("cannot record the failure of %s: %s", job.path, recording, exc_info=is_bug(recording))
            self._paused_until = self._clock() + 30.0

    def stop(self, deadline: float) -> bool:
        """Stop taking files; wait until ``deadline`` (monotonic) for those in flight.
        Returns True when nothing is left running."""
        with self._life:
            self._stopping.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        running = [future for future in list(self._in_flight.values()) if not future.done()]
        if running:
            wait(running, timeout=max(0.0, deadline - time.monotonic()))
        return all(future.done() for future in running)


@dataclass
class Progress:
    """Indexing outcomes since the last summary line."""

    counts: dict

    @staticmethod
    def empty() -> Progress:
        return Progress({outcome: 0 for outcome in Outcome})

    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        return ", ".join(f"{count} {outcome.value}" for outcome, count in self.counts.items() if count)


class IndexingLog:
    """What the queue worker calls with each file's outcome, on its indexing threads: a
    file that now shows differently in the reports is a change for the scan job
    (``note_change``), and every ``PROGRESS_SECONDS`` one summary line goes to the log,
    ending with ``queue_line()`` (from ``health``)."""

    def __init__(self, note_change: Callable[[], None], queue_line: Callable[[], str]):
        self._note_change = note_change
        self._queue_line = queue_line
        self._lock = threading.Lock()
        self._progress = Progress.empty()
        self._progress_at = time.monotonic()

    def __call__(self, job: KnownFile, outcome: Outcome) -> None:
        with self._lock:
            self._progress.counts[outcome] += 1
            report = time.monotonic() - self._progress_at >= PROGRESS_SECONDS
            if report:
                progress, self._progress = self._progress, Progress.empty()
                self._progress_at = time.monotonic()
        if outcome in (Outcome.ANALYSED, Outcome.REUSED, Outcome.FAILED, Outcome.VANISHED):
            self._note_change()
        if report:
            log.info("indexing: %s in the last %ds; %s", progress.line(), PROGRESS_SECONDS, self._queue_line())
