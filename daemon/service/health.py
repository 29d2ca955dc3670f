"""The health stage: the heartbeat, and what the service says about itself.

``Health.heartbeat`` runs on the scheduler every ``heartbeat_seconds``: it checks that
every part works (the watchers, the main loop coming round, the threads given to
``keep_alive``, which it restarts when they died, and the state database answering),
logs the problems when they change, rewrites the status file (``status``) and the
STATUS= line, and sends WATCHDOG=1 only when there is no problem, so systemd restarts a
service that is stuck. The life cycle (``app``) and the live settings also write the
status file through it; the queue worker's progress line ends with its ``queue_line``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

from dupe_scanner.errors import StateError
from dupe_scanner.service.intake import Intake
from dupe_scanner.service.notify import Notifier
from dupe_scanner.service.queue_worker import QueueWorker
from dupe_scanner.service.scan_job import ScanJob
from dupe_scanner.service.stability import StabilityTracker
from dupe_scanner.service.status import ServiceStatus, StateCounts, status_path, write_status
from dupe_scanner.service.watching import Watcher
from dupe_scanner.settings import Settings
from dupe_scanner.store.database import read_transaction

log = logging.getLogger("dupe_scanner.service")

HEARTBEAT_SECONDS = 10.0  # status, health checks; WATCHDOG=1 at least this often
LOOP_STALL_SECONDS = 60.0  # the main loop must come round at least this often to count as alive


def heartbeat_seconds(watchdog_interval: float | None) -> float:
    """How often the heartbeat runs: often enough for systemd's watchdog, if it has one."""
    return min(HEARTBEAT_SECONDS, watchdog_interval) if watchdog_interval else HEARTBEAT_SECONDS


class Restartable(Protocol):
    def alive(self) -> bool: ...

    def start(self) -> None: ...


class Health:
    """The heartbeat and the service's status; see the module's docstring."""

    def __init__(
        self,
        engine: Engine,
        settings: Callable[[], Settings],
        *,
        notifier: Notifier,
        clock: Callable[[], float],
        started_at: float,
        heartbeat_seconds: float,
        phase: Callable[[], str],
        watcher: Watcher,
        tracker: StabilityTracker,
        intake: Intake,
        queue: QueueWorker,
        scan_job: ScanJob,
    ):
        self._engine = engine
        self._settings = settings
        self._notifier = notifier
        self._clock = clock
        self._started_at = started_at
        self._heartbeat_seconds = heartbeat_seconds
        self._phase = phase
        self._watcher = watcher
        self._tracker = tracker
        self._intake = intake
        self._queue = queue
        self._scan_job = scan_job
        self._threads: list[tuple[str, Restartable]] = []
        self._threads_guard = threading.Lock()
        self.problems: list[str] = []  # at the last heartbeat

    def keep_alive(self, what: str, part: Restartable) -> None:
        """Have the heartbeat restart ``part``'s thread (the ``what`` thread) if it dies."""
        with self._threads_guard:
            self._threads.append((what, part))

    def heartbeat(self) -> None:
        problems = self._watcher.check().problems + self._stalled() + self._restart_dead_threads()
        counts = StateCounts()
        try:
            counts = self.counts(raise_errors=True)
        except StateError as error:
            problems.append(str(error))
        except Exception as error:
            problems.append(f"the state database does not answer: {error}")
        self._log_problems(problems)
        self.write_status(problems, counts)
        self._notifier.status(self.status_line(counts))
        if not problems:
            self._notifier.watchdog()

    def _stalled(self) -> list[str]:
        if time.monotonic() - self._intake.beat > LOOP_STALL_SECONDS:
            return [f"the event loop has not come round for {time.monotonic() - self._intake.beat:.0f}s"]
        return []

    def _restart_dead_threads(self) -> list[str]:
        if self._phase() in ("stopping", "stopped"):
            return []  # stopped on purpose
        problems = []
        with self._threads_guard:
            threads = list(self._threads)
        for what, part in threads:
            if not part.alive():
                problems.append(f"the {what} thread died; restarting it")
                part.start()
        return problems

    def _log_problems(self, problems: list[str]) -> None:
        """Log the problems when they change, and when they are gone."""
        if problems != self.problems:
            for problem in problems:
                log.error("health: %s", problem)
            if not problems and self.problems:
                log.info("health: all parts are working again")
            self.problems = problems

    def counts(self, raise_errors: bool = False) -> StateCounts:
        try:
            with read_transaction(self._engine) as connection:
                return StateCounts.read(connection)
        except Exception:
            if raise_errors:
                raise
            return StateCounts()

    def status_line(self, counts: StateCounts) -> str:
        """The STATUS= line systemd shows."""
        last = counts.last_scan_at
        when = datetime.fromtimestamp(last).strftime("%H:%M:%S") if last else "never"
        scan_report = self._scan_job.report
        return (
            f"{len(self._settings().watch)} folders watched; queue {counts.pending} pending, "
            f"{len(self._tracker)} settling; {counts.indexed} indexed, {counts.failed} failed; "
            f"last scan {when}" + (f"; {scan_report.line()}" if scan_report is not None else "")
        )

    def queue_line(self) -> str:
        counts = self.counts()
        return f"{counts.pending} pending, {len(self._tracker)} settling, {counts.indexed} indexed"

    def write_status(self, problems: list[str], counts: StateCounts | None = None) -> None:
        """Rewrite the status file that ``dupe-scanner status`` reads."""
        counts = self.counts() if counts is None else counts
        settings = self._settings()
        status = ServiceStatus(
            pid=os.getpid(),
            started_at=self._started_at,
            heartbeat_at=self._clock(),
            heartbeat_seconds=self._heartbeat_seconds,
            phase=self._phase(),
            settings=str(settings.source or "built-in defaults"),
            folders=[{"path": s.path, "mode": s.mode, "reason": s.reason} for s in self._watcher.status()],
            pending=counts.pending,
            settling=len(self._tracker),
            indexing=self._queue.in_flight,
            indexed=counts.indexed,
            failed=counts.failed,
            last_scan_at=counts.last_scan_at,
            last_scan_groups=counts.last_scan_groups,
            last_scan_error=counts.last_scan_error,
            last_reports_at=self._scan_job.last_reports_at or _mtime(settings.paths.reports / "duplicates.json"),
            problems=problems,
        )
        try:
            write_status(status_path(settings), status)
        except OSError as error:
            log.debug("cannot write the status file: %s", error)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
