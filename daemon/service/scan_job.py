"""The scan stage: when the reports are written again, and writing them.

``ScanJob.note_change`` is called by the intake, the reconcile walk, the queue worker's
outcomes and the live settings whenever something the reports show changed; it sets a
debounced scan on the scheduler for when things have been quiet a while. The scan itself
runs as a ``Coalesced`` job on the scheduler's threads (``runs``), also requested by the
scan schedule and at start-up: it imports decisions files dropped into the reports
folder, skips the work when nothing changed since the last scan, and otherwise runs
``run_scan``, its progress on the STATUS= line while it lasts (``report``, read by
``health``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine

from dupe_scanner.backends.base import Backend
from dupe_scanner.memory import release_memory
from dupe_scanner.scanning import INPUTS_KEY, reports_current, run_scan, scan_inputs
from dupe_scanner.service.decision_inbox import import_dropped
from dupe_scanner.service.jobs import Coalesced
from dupe_scanner.service.notify import Notifier
from dupe_scanner.service.scan_progress import ScanReport
from dupe_scanner.settings import Settings
from dupe_scanner.store import contents as content_store
from dupe_scanner.store.database import read_transaction

log = logging.getLogger("dupe_scanner.service")

MAX_SCAN_DELAY_FACTOR = 6  # a burst that never settles still gets a scan every debounce × this (≥ 60 s)


class ScanJob:
    """Debounces changes into scans and runs them; see the module's docstring."""

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        settings: Callable[[], Settings],
        scheduler: BackgroundScheduler,
        notifier: Notifier,
        clock: Callable[[], float],
    ):
        self._engine = engine
        self._backend = backend
        self._settings = settings
        self._scheduler = scheduler
        self._notifier = notifier
        self._clock = clock
        self._lock = threading.Lock()
        self._burst_started: float | None = None
        self._debounce_at: float | None = None
        self.last_inputs: str | None = None
        self.last_reports_at: float | None = None
        self.report: ScanReport | None = None  # while a scan runs
        self.runs = Coalesced("scan", scheduler, self._scan)

    def request(self, reasons: set) -> None:
        """Scan soon, for ``reasons`` (which the log names)."""
        self.runs.request(reasons)

    def note_change(self) -> None:
        """Something the reports show changed: scan once things have been quiet for
        ``scan.debounce_seconds`` (or, in a burst that does not end, every few debounces)."""
        debounce = self._settings().scan.debounce_seconds
        now = self._clock()
        with self._lock:
            if self._burst_started is None:
                self._burst_started = now
            latest = self._burst_started + max(60.0, debounce * MAX_SCAN_DELAY_FACTOR)
            run_at = min(now + debounce, latest)
            if self._debounce_at is not None and abs(run_at - self._debounce_at) < 0.5:
                return
            self._debounce_at = run_at
        with contextlib.suppress(SchedulerNotRunningError):
            self._scheduler.add_job(
                self._debounced_scan, DateTrigger(run_date=datetime.fromtimestamp(run_at, UTC)),
                id="scan-debounced", name="scan after changes", replace_existing=True,
            )

    def _debounced_scan(self) -> None:
        with self._lock:
            self._debounce_at = None
        self.runs.request({"changes"})

    def settings_changed(self) -> None:
        """The live settings changed: scan if they change what the reports show."""
        if self.inputs() != self.last_inputs:
            self.runs.request({"settings"})

    def inputs(self) -> str:
        """What, besides the state's files, shapes the reports (``scanning.scan_inputs``); the
        last successful scan's are kept in the state, so a restart on an unchanged state need
        not scan again."""
        settings = self._settings()
        # A decision made on the command line while the service runs changes the reports too.
        with read_transaction(self._engine) as connection:
            return scan_inputs(
                connection, settings.scan.threshold, settings.paths.reports, settings.report, settings.keep,
                self._watched_folders(settings),
            )

    @staticmethod
    def _watched_folders(settings: Settings) -> list:
        return [watch.path for watch in settings.watch]

    def _scan(self, reasons: set) -> None:
        with self._lock:
            self._burst_started = None
        settings = self._settings()
        # Before the inputs are read: an imported file changes the decisions, so the reports.
        import_dropped(self._engine, settings.paths.reports, self._clock(), settings.index.stable_seconds)
        inputs = self.inputs()
        if not self._worth_scanning(inputs, reasons):
            return
        self.report = ScanReport(self._notifier.status)
        try:
            settings = self._settings()
            outcome = run_scan(
                self._engine, self._backend, settings.scan.threshold, settings.paths.reports,
                settings.report, clock=self._clock, keep=settings.keep, progress=self.report,
                watched_folders=self._watched_folders(settings),
            )
        finally:
            self.report = None
        self.last_inputs = outcome.inputs  # run_scan kept them in the state too
        if getattr(outcome.reports, "changed", True):
            self.last_reports_at = self._clock()
        del outcome
        release_memory()

    def _worth_scanning(self, inputs: str, reasons: set) -> bool:
        """False when the reports are current (``scanning.reports_current``): no file and no
        input changed since the last successful scan, and its reports are there."""
        reports = self._settings().paths.reports
        with read_transaction(self._engine) as connection:
            current = reports_current(connection, inputs, reports, self._backend.comparison)
            if self.last_inputs is None:
                self.last_inputs = content_store.get_meta(connection, INPUTS_KEY)
        if current is not None:
            log.debug("scan (%s): nothing changed since the last one", ", ".join(sorted(reasons)))
            return False
        return True
