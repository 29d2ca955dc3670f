"""The scheduler's side of the service: triggers from the settings' schedules, and jobs
whose requests coalesce.

The life cycle (``app``) builds one APScheduler and adds the recurring jobs with
``trigger_for``; the scan job and the reconcile walk each run as a ``Coalesced`` job, so
a burst of requests is one more run, never two at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dupe_scanner.errors import DupeScannerError
from dupe_scanner.settings import Schedule

log = logging.getLogger("dupe_scanner.service")


def trigger_for(schedule: Schedule):
    """The APScheduler trigger for an ``interval:…`` or a cron schedule."""
    if schedule.interval_seconds is not None:
        return IntervalTrigger(seconds=schedule.interval_seconds)
    return CronTrigger.from_crontab(schedule.cron)


class Coalesced:
    """A job run on the scheduler's threads; requests made while it runs are merged into
    one more run, never lost and never run twice at once."""

    def __init__(self, name: str, scheduler: BackgroundScheduler, work: Callable[[set], None]):
        self.name = name
        self._scheduler = scheduler
        self._work = work
        self._mutex = threading.Lock()
        self._items: set = set()
        self._wanted = False
        self._running = False
        self.idle = threading.Event()
        self.idle.set()

    def request(self, items: Iterable = ()) -> None:
        with self._mutex:
            self._items.update(items)
            self._wanted = True
            if self._running:
                return
            self._running = True
            self.idle.clear()
        try:
            self._scheduler.add_job(self._run, id=f"{self.name}-run", name=self.name, replace_existing=True)
        except SchedulerNotRunningError:
            with self._mutex:
                self._running = False
                self.idle.set()

    def _run(self) -> None:
        while True:
            with self._mutex:
                if not self._wanted:
                    self._running = False
                    self.idle.set()
                    return
                items, self._items, self._wanted = self._items, set(), False
            try:
                self._work(items)
            except DupeScannerError as error:
                log.error("%s: %s", self.name, error)
            except Exception:
                log.exception("%s failed", self.name)
