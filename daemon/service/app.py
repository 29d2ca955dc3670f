"""``dupe-scanner run``: the long-running service that keeps the state and reports current.

It gets the state, the backend and the indexer from ``composition.components`` (as the
command line does) and wires them to the service's own parts, each keeping to one job:

- the watcher turns filesystem events into hints (``watching``);
- the main loop, the only owner of the stability tracker, turns hints into rows: a
  changed file is marked pending once it has settled (``stability``), a deleted one
  gone, a moved one renamed (keeping its analysis);
- the queue worker drains pending rows through the lead's ``Indexer`` on a thread pool;
- APScheduler runs the recurring jobs: the scan schedule, the debounced scan after a
  burst of changes settles, the reconcile walk, and the heartbeat (health checks,
  WATCHDOG=1, STATUS=, the status file);
- the config reloader applies settings edits and SIGHUP.

Events are hints, the files table is the truth: if the process dies at any instant,
the reconcile walk at the next start repairs what the lost hints would have done, and
pending rows are simply indexed then.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from daemon.backends.base import Backend
from daemon.errors import StateError
from daemon.indexer import Indexer
from daemon.service.config_reload import ConfigReloader
from daemon.service.intake import Intake, ReconcileWalk
from daemon.service.jobs import Coalesced, trigger_for
from daemon.service.notify import Notifier, drop_environment
from daemon.service.processes import descendants, kill_all
from daemon.service.queue_worker import IndexingLog, QueueWorker
from daemon.service.scan_job import ScanJob
from daemon.service.stability import StabilityTracker
from daemon.service.status import ServiceStatus, StateCounts, status_path, write_status
from daemon.service.watching import Watcher
from daemon.settings import Settings
from daemon.store.database import read_transaction
from daemon.store.lock import hold_state

log = logging.getLogger("dupe-scanner.service")

HEARTBEAT_SECONDS = 10.0  # status, health checks; WATCHDOG=1 at least this often
STOP_GRACE_SECONDS = 5.0  # SIGTERM: in-flight work may finish within this, the rest stays pending
LOOP_STALL_SECONDS = 60.0  # the main loop must come round at least this often to count as alive

# Settings that need a restart: the state file and the backend are opened once.
RESTART_NEEDED = ("paths.state", "backend")


def run_service(settings: Settings, environ: Mapping[str, str] | None = None) -> int:
    """Run until SIGTERM/SIGINT. Reads the notify variables from ``environ`` (the process
    environment when not given) and removes them, so child processes cannot speak for us."""
    environ = dict(os.environ) if environ is None else environ
    notifier = Notifier.from_environ(environ, os.getpid())
    drop_environment(os.environ)
    service = Service(settings, notifier)
    return service.run()


class Service:
    def __init__(self, settings: Settings, notifier: Notifier, *, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.notifier = notifier
        self.clock = clock
        self.started_at = clock()
        self._messages: queue.SimpleQueue = queue.SimpleQueue()  # hints, commands, None (wake)
        self._stop = threading.Event()
        self._sighup = False
        self._phase = "starting"
        self._problems: list[str] = []
        self.tracker = StabilityTracker(settings.index.stable_seconds)
        self.watcher = Watcher(self._messages.put)
        interval = notifier.watchdog_interval
        self.heartbeat_seconds = min(HEARTBEAT_SECONDS, interval) if interval else HEARTBEAT_SECONDS
        self.scheduler = BackgroundScheduler(
            executors={"default": SchedulerPool(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self.engine: Engine | None = None
        self.backend: Backend | None = None
        self.indexer: Indexer | None = None
        self.queue: QueueWorker | None = None
        self.reloader: ConfigReloader | None = None
        self.scan_job: ScanJob | None = None
        self.scans: Coalesced | None = None
        self.walk: ReconcileWalk | None = None
        self.reconciles: Coalesced | None = None
        self.intake: Intake | None = None

    # Life cycle ------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        from daemon.composition import components

        state = self.settings.paths.state
        with hold_state(state, "dupe-scanner run"), components(self.settings, clock=self.clock) as parts:
            self.engine, self.backend, self.indexer = parts.engine, parts.backend, parts.indexer
            try:
                self._start()
                self.intake.run(self._stop, self._take_sighup, self._on_sighup)
            finally:
                clean = self._shutdown()
            if not clean:
                # Leave before ``components`` closes the backend: that would wait for the
                # work still running, which is what the grace time gave up on.
                log.warning("some work was still running after %gs; it stays pending and resumes at the next start",
                            STOP_GRACE_SECONDS)
                logging.shutdown()
                kill_all(descendants(os.getpid()))  # the analysis workers would outlive us otherwise
                os._exit(0)
        return 0

    def _start(self) -> None:
        self.watcher.apply(self.settings.watch)
        self.scan_job = ScanJob(self.engine, self.backend, lambda: self.settings, self.scheduler, self.notifier, self.clock)
        self.scans = self.scan_job.runs
        outcomes = IndexingLog(self.scan_job.note_change, self._queue_line)
        self.queue = QueueWorker(self.engine, self.indexer, self.settings.index.worker_count, outcomes, clock=self.clock)
        self.walk = ReconcileWalk(self.engine, lambda: self.settings, self.scheduler, self._messages.put, clock=self.clock,
                                  wake_queue=self.queue.wake, note_change=self.scan_job.note_change)
        self.reconciles = self.walk.runs
        self.intake = Intake(self.engine, lambda: self.settings, self._messages, self.tracker, clock=self.clock,
                             wake_queue=self.queue.wake, note_change=self.scan_job.note_change,
                             reconcile=self.walk.request)
        self.queue.start()
        self.scheduler.start()
        self._schedule_jobs()
        if self.settings.source is not None:
            self.reloader = ConfigReloader(self.settings.source, self.settings, self._settings_changed, notifier=self.notifier)
            self.reloader.start()
        self.reconciles.request(w.path for w in self.settings.watch)  # the start-up walk
        self.scans.request({"start"})  # skipped when the state and the settings are as at the last scan
        self._phase = "running"
        self._write_status([])
        self.notifier.ready(self._status_line(self._counts()))
        log.info(
            "running: %d folder%s watched, state %s, reports in %s",
            len(self.settings.watch), "" if len(self.settings.watch) == 1 else "s",
            self.settings.paths.state, self.settings.paths.reports,
        )

    def _schedule_jobs(self) -> None:
        self.scheduler.add_job(
            self.scans.request, trigger_for(self.settings.scan.schedule), args=[{"schedule"}],
            id="scan-schedule", name="scheduled scan", replace_existing=True,
        )
        self.scheduler.add_job(
            self.walk.request_all, trigger_for(self.settings.index.reconcile),
            id="reconcile-schedule", name="scheduled reconcile", replace_existing=True,
        )
        self.scheduler.add_job(
            self._heartbeat, IntervalTrigger(seconds=self.heartbeat_seconds),
            id="heartbeat", name="heartbeat", replace_existing=True,
        )

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded (tests): the owner calls stop() and reload_settings() itself

        def stop(signum, _frame):
            self._stop.set()
            self._messages.put(None)

        def reload(_signum, _frame):
            self._sighup = True
            self._messages.put(None)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def stop(self) -> None:
        """Ask the service to stop (what SIGTERM does)."""
        self._stop.set()
        self._messages.put(None)

    def reload_settings(self) -> None:
        """Ask for the settings to be read again (what SIGHUP does)."""
        self._sighup = True
        self._messages.put(None)

    def _take_sighup(self) -> bool:
        """Whether a SIGHUP came since the main loop last asked."""
        taken, self._sighup = self._sighup, False
        return taken

    def _on_sighup(self) -> None:
        if self.reloader is not None:
            self.reloader.request("SIGHUP")
        else:
            log.info("SIGHUP: no settings file to reload (running on the built-in defaults)")

    def _shutdown(self) -> bool:
        self._phase = "stopping"
        self.notifier.stopping("stopping: unfinished files stay pending")
        log.info("stopping")
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        if self.reloader is not None:
            self.reloader.stop()
        self.watcher.stop()
        try:
            self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass
        clean = True
        if self.queue is not None:
            clean = self.queue.stop(deadline)
        for job in (self.scans, self.reconciles):
            if job is None:
                continue
            clean = job.idle.wait(max(0.0, deadline - time.monotonic())) and clean
        if clean and self.backend is not None:
            closer = threading.Thread(target=self.backend.close, name="backend-close", daemon=True)
            closer.start()
            closer.join(max(0.5, deadline - time.monotonic()))
            clean = not closer.is_alive()
        self._phase = "stopped"
        try:
            self._write_status([])
        except Exception:
            pass
        if clean and self.engine is not None:
            self.engine.dispose()
        self.notifier.close()
        log.info("stopped")
        return clean

    # The progress line, the heartbeat ------------------------------------------------------

    def _queue_line(self) -> str:
        counts = self._counts()
        return f"{counts.pending} pending, {len(self.tracker)} settling, {counts.indexed} indexed"

    def _heartbeat(self) -> None:
        problems = []
        health = self.watcher.check()
        problems.extend(health.problems)
        if time.monotonic() - self.intake.beat > LOOP_STALL_SECONDS:
            problems.append(f"the event loop has not come round for {time.monotonic() - self.intake.beat:.0f}s")
        if self.queue is not None and not self.queue.alive():
            problems.append("the queue worker thread died; restarting it")
            self.queue.start()
        if self.reloader is not None and not self.reloader.alive():
            problems.append("the settings reloader thread died; restarting it")
            self.reloader.start()
        counts = StateCounts()
        try:
            counts = self._counts(raise_errors=True)
        except StateError as error:
            problems.append(str(error))
        except Exception as error:
            problems.append(f"the state database does not answer: {error}")
        if problems != self._problems:
            for problem in problems:
                log.error("health: %s", problem)
            if not problems and self._problems:
                log.info("health: all parts are working again")
            self._problems = problems
        self._write_status(problems, counts)
        self.notifier.status(self._status_line(counts))
        if not problems:
            self.notifier.watchdog()

    # Status ------------------------------------------------------------------------------------------

    def _counts(self, raise_errors: bool = False) -> StateCounts:
        try:
            with read_transaction(self.engine) as connection:
                return StateCounts.read(connection)
        except Exception:
            if raise_errors:
                raise
            return StateCounts()

    def _status_line(self, counts: StateCounts) -> str:
        last = counts.last_scan_at
        when = datetime.fromtimestamp(last).strftime("%H:%M:%S") if last else "never"
        scan_report = self.scan_job.report
        return (
            f"{len(self.settings.watch)} folders watched; queue {counts.pending} pending, "
            f"{len(self.tracker)} settling; {counts.indexed} indexed, {counts.failed} failed; "
            f"last scan {when}" + (f"; {scan_report.line()}" if scan_report is not None else "")
        )

    def _write_status(self, problems: list[str], counts: StateCounts | None = None) -> None:
        counts = self._counts() if counts is None else counts
        status = ServiceStatus(
            pid=os.getpid(),
            started_at=self.started_at,
            heartbeat_at=self.clock(),
            heartbeat_seconds=self.heartbeat_seconds,
            phase=self._phase,
            settings=str(self.settings.source or "built-in defaults"),
            folders=[{"path": s.path, "mode": s.mode, "reason": s.reason} for s in self.watcher.status()],
            pending=counts.pending,
            settling=len(self.tracker),
            indexing=self.queue.in_flight if self.queue is not None else 0,
            indexed=counts.indexed,
            failed=counts.failed,
            last_scan_at=counts.last_scan_at,
            last_scan_groups=counts.last_scan_groups,
            last_scan_error=counts.last_scan_error,
            last_reports_at=self.scan_job.last_reports_at or _mtime(self.settings.paths.reports / "duplicates.json"),
            problems=problems,
        )
        try:
            write_status(status_path(self.settings), status)
        except OSError as error:
            log.debug("cannot write the status file: %s", error)

    # Live settings -------------------------------------------------------------------------------------

    def _settings_changed(self, old: Settings, new: Settings) -> None:
        """Called on the reloader's thread: the main loop applies it, and we wait for that."""
        done = threading.Event()

        def apply() -> None:
            try:
                self._apply_settings(old, new)
            finally:
                done.set()

        self._messages.put(apply)
        if not done.wait(60):
            log.warning("the new settings are taking long to apply")

    def _apply_settings(self, old: Settings, new: Settings) -> None:
        for key in RESTART_NEEDED:
            section, _, name = key.partition(".")
            before = getattr(getattr(old, section), name) if name else getattr(old, section)
            after = getattr(getattr(new, section), name) if name else getattr(new, section)
            if before != after:
                log.warning("%s changed: this takes effect at the next restart (systemctl restart dupe-scanner)", key)
        # Keep what cannot change while running, take the rest.
        from dataclasses import replace

        new = replace(new, paths=replace(new.paths, state=old.paths.state), backend=old.backend)
        self.settings = new
        if new.log_level != old.log_level:
            logging.getLogger().setLevel(new.log_level.upper())
        self.tracker.set_stable_seconds(new.index.stable_seconds)
        self.indexer.settings = new.index
        self.queue.set_capacity(new.index.worker_count)
        if new.scan.schedule != old.scan.schedule or new.index.reconcile != old.index.reconcile:
            self._schedule_jobs()
        changes = self.watcher.apply(new.watch)
        if changes.removed:
            self.intake.unwatch(changes.removed)
        walk = [watch.path for watch in (*changes.added, *changes.changed)]
        if walk:
            self.reconciles.request(walk)
        self.scan_job.settings_changed()
        self._write_status(self._problems)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
