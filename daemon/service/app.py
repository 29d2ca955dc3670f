"""``dupe-scanner run``: the long-running service that keeps the state and reports current.

It gets the state, the backend and the indexer from ``composition.components`` (as the
command line does) and wires them to the service's stages, one module each:

- ``intake``: the main loop, the only owner of the stability tracker, turns the
  watcher's hints (``watching``) into rows: a changed file is marked pending once it
  has settled (``stability``), a deleted one gone, a moved one renamed (keeping its
  analysis); its reconcile walk repairs what the hints missed;
- ``queue_worker``: drains pending rows through the lead's ``Indexer`` on a thread pool;
- ``scan_job``: the debounced scan after a burst of changes settles, and the scheduled one;
- ``health``: the heartbeat (health checks, WATCHDOG=1, STATUS=, the status file);
- ``live_settings``: settings edits and SIGHUP, applied to every stage.

APScheduler (``jobs``) runs the recurring jobs. This module is the life cycle: it builds
the stages, starts them, runs the main loop until SIGTERM, and stops them in order.

Events are hints, the files table is the truth: if the process dies at any instant,
the reconcile walk at the next start repairs what the lost hints would have done, and
pending rows are simply indexed then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from dupe_scanner.backends.base import Backend
from dupe_scanner.indexer import Indexer
from dupe_scanner.service.health import Health, heartbeat_seconds
from dupe_scanner.service.intake import Intake, ReconcileWalk
from dupe_scanner.service.jobs import trigger_for
from dupe_scanner.service.live_settings import LiveSettings
from dupe_scanner.service.notify import Notifier, drop_environment
from dupe_scanner.service.processes import descendants, kill_all
from dupe_scanner.service.queue_worker import IndexingLog, QueueWorker
from dupe_scanner.service.scan_job import ScanJob
from dupe_scanner.service.stability import StabilityTracker
from dupe_scanner.service.watching import Watcher
from dupe_scanner.settings import Settings
from dupe_scanner.store import LOCK_WAIT_SECONDS
from dupe_scanner.store.lock import hold_state

log = logging.getLogger("dupe_scanner.service")

STOP_GRACE_SECONDS = 5.0  # SIGTERM: in-flight work may finish within this, the rest stays pending


def run_service(
    settings: Settings, environ: Mapping[str, str] | None = None, *, lock_wait: float = LOCK_WAIT_SECONDS
) -> int:
    """Run until SIGTERM/SIGINT. Reads the notify variables from ``environ`` (the process
    environment when not given) and removes them, so child processes cannot speak for us.
    ``lock_wait``: the seconds a unit of work waits for a lock another process holds."""
    environ = dict(os.environ) if environ is None else environ
    notifier = Notifier.from_environ(environ, os.getpid())
    drop_environment(os.environ)
    service = Service(settings, notifier, lock_wait=lock_wait)
    return service.run()


@dataclass(frozen=True)
class Stages:
    """The service's stages, built together by ``Service._build`` once the state and the backend are open."""

    scan_job: ScanJob
    queue: QueueWorker
    walk: ReconcileWalk
    intake: Intake
    health: Health


class Service:
    """The life cycle: builds the stages once the state is open, starts them, runs the
    main loop (the intake's) on the calling thread until ``stop`` (SIGTERM, SIGINT), and
    stops them in order. ``run_service`` calls it; tests run it on a thread."""

    def __init__(
        self, settings: Settings, notifier: Notifier, *, clock: Callable[[], float] = time.time,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ):
        self.notifier = notifier
        self.clock = clock
        self.lock_wait = lock_wait
        self.started_at = clock()
        self._messages: queue.SimpleQueue = queue.SimpleQueue()  # hints, commands, None (wake)
        self._stop = threading.Event()
        self._sighup = False
        self._phase = "starting"
        self.live = LiveSettings(settings, self._messages.put)
        self.tracker = StabilityTracker(settings.index.stable_seconds)
        self.watcher = Watcher(self._messages.put)
        self.heartbeat_seconds = heartbeat_seconds(notifier.watchdog_interval)
        self.scheduler = BackgroundScheduler(
            executors={"default": SchedulerPool(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self.engine: Engine | None = None
        self.backend: Backend | None = None
        self.indexer: Indexer | None = None
        self.stages: Stages | None = None  # built by ``_build`` once the state and the backend are open

    @property
    def settings(self) -> Settings:
        return self.live.current

    @property
    def health(self) -> Health | None:
        return self.stages.health if self.stages is not None else None

    def run(self) -> int:
        self._install_signals()
        from dupe_scanner.composition import components

        state = self.settings.paths.state
        with hold_state(state, "dupe-scanner run"), components(self.settings, clock=self.clock, lock_wait=self.lock_wait) as parts:
            self.engine, self.backend, self.indexer = parts.engine, parts.backend, parts.indexer
            try:
                stages = self._start(parts.engine, parts.backend, parts.indexer)
                stages.intake.run(self._stop, self._take_sighup, self.live.sighup)
            finally:
                clean = self._shutdown()
            if not clean:
                log.warning("some work was still running after %gs; it stays pending and resumes at the next start",
                            STOP_GRACE_SECONDS)
                if _owns_the_process():
                    # Leave before ``components`` closes the backend: that would wait for the
                    # work still running, which is what the grace time gave up on.
                    logging.shutdown()
                    kill_all(descendants(os.getpid()))  # the analysis workers would outlive us otherwise
                    os._exit(0)
        return 0

    def _build(self, engine: Engine, backend: Backend, indexer: Indexer) -> Stages:
        """The stages, each handed the parts it works on and the others it tells."""
        live, clock = self.live, self.clock
        scan_job = ScanJob(engine, backend, live, self.scheduler, self.notifier, clock)
        # The progress line ends with the queue's size, which the health stage reads.
        outcomes = IndexingLog(scan_job.note_change, lambda: health.queue_line())
        queue = QueueWorker(engine, indexer, self.settings.index.worker_count, outcomes, clock=clock)
        walk = ReconcileWalk(engine, live, self.scheduler, self._messages.put, clock=clock,
                             wake_queue=queue.wake, note_change=scan_job.note_change)
        intake = Intake(engine, live, self._messages, self.tracker, clock=clock,
                        wake_queue=queue.wake, note_change=scan_job.note_change,
                        reconcile=walk.request)
        health = Health(
            engine, live, notifier=self.notifier, clock=clock, started_at=self.started_at,
            heartbeat_seconds=self.heartbeat_seconds, phase=lambda: self._phase, watcher=self.watcher,
            tracker=self.tracker, intake=intake, queue=queue, scan_job=scan_job,
        )
        stages = Stages(scan_job, queue, walk, intake, health)
        live.on_change(lambda old, new: self._settings_applied(stages, indexer, old, new))
        return stages

    def _start(self, engine: Engine, backend: Backend, indexer: Indexer) -> Stages:
        self.stages = stages = self._build(engine, backend, indexer)
        self.watcher.apply(self.settings.watch)
        stages.queue.start()
        stages.health.keep_alive("queue worker", stages.queue)
        self.scheduler.start()
        self._schedule_jobs(stages)
        reloader = self.live.start(self.notifier)
        if reloader is not None:
            stages.health.keep_alive("settings reloader", reloader)
        stages.walk.request_all()  # the start-up walk
        stages.scan_job.request({"start"})  # skipped when the state and the settings are as at the last scan
        self._phase = "running"
        stages.health.write_status([])
        self.notifier.ready(stages.health.status_line(stages.health.counts()))
        log.info(
            "running: %d folder%s watched, state %s, reports in %s",
            len(self.settings.watch), "" if len(self.settings.watch) == 1 else "s",
            self.settings.paths.state, self.settings.paths.reports,
        )
        return stages

    def _schedule_jobs(self, stages: Stages) -> None:
        self.scheduler.add_job(
            stages.scan_job.request, trigger_for(self.settings.scan.schedule), args=[{"schedule"}],
            id="scan-schedule", name="scheduled scan", replace_existing=True,
        )
        self.scheduler.add_job(
            stages.walk.request_all, trigger_for(self.settings.index.reconcile),
            id="reconcile-schedule", name="scheduled reconcile", replace_existing=True,
        )
        self.scheduler.add_job(
            stages.health.heartbeat, IntervalTrigger(seconds=self.heartbeat_seconds),
            id="heartbeat", name="heartbeat", replace_existing=True,
        )

    def _settings_applied(self, stages: Stages, indexer: Indexer, old: Settings, new: Settings) -> None:
        """What new settings change in each stage (on the main loop, once they are current)."""
        self.tracker.set_stable_seconds(new.index.stable_seconds)
        indexer.settings = new.index
        stages.queue.set_capacity(new.index.worker_count)
        if new.scan.schedule != old.scan.schedule or new.index.reconcile != old.index.reconcile:
            self._schedule_jobs(stages)
        changes = self.watcher.apply(new.watch)
        if changes.removed:
            stages.intake.unwatch(changes.removed)
        walk = [watch.path for watch in (*changes.added, *changes.changed)]
        if walk:
            stages.walk.request(walk)
        stages.scan_job.settings_changed()
        stages.health.write_status(stages.health.problems)

    # Signals -----------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        if not _owns_the_process():
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

    # Stopping ----------------------------------------------------------------------------------

    def _shutdown(self) -> bool:
        self._phase = "stopping"
        self.notifier.stopping("stopping: unfinished files stay pending")
        log.info("stopping")
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        self.live.stop()
        self.watcher.stop()
        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=False)
        clean = True
        stages = self.stages
        if stages is not None:
            clean = stages.queue.stop(deadline)
            for job in (stages.scan_job, stages.walk):
                clean = job.runs.idle.wait(max(0.0, deadline - time.monotonic())) and clean
        if clean and self.backend is not None:
            closer = threading.Thread(target=self.backend.close, name="backend-close", daemon=True)
            closer.start()
            closer.join(max(0.5, deadline - time.monotonic()))
            clean = not closer.is_alive()
        self._phase = "stopped"
        try:
            if stages is not None:
                stages.health.write_status([])
        except Exception:
            pass
        if clean and self.engine is not None:
            self.engine.dispose()
        self.notifier.close()
        log.info("stopped")
        return clean


def _owns_the_process() -> bool:
    """Whether the service runs in the process's main thread, as ``dupe-scanner run`` runs it,
    rather than embedded in another program's thread (the tests'), whose process, signals
    and other children are not the service's to take."""
    return threading.current_thread() is threading.main_thread()
