"""How the running scan goes, for the service's STATUS= line and its log.

A scan of thousands of images takes many minutes; without a word, people take it for a
hang. ``ScanReport`` receives the scan's progress (``scanning.ScanProgress``) and says it:
to ``announce`` (the STATUS= line) at each new stage and at most every
``ANNOUNCE_SECONDS``, and in the log every ``LOG_SECONDS``, with an estimate of the time
left in the stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("dupe_scanner.service")

ANNOUNCE_SECONDS = 1.0
LOG_SECONDS = 30.0


class ScanReport:
    def __init__(self, announce: Callable[[str], object], clock: Callable[[], float] = time.monotonic):
        self._announce = announce
        self._clock = clock
        self._stage = ""
        self._done = 0
        self._total = 0
        self._stage_started = self._announced = self._logged = clock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self._clock()
        new_stage = stage != self._stage
        if new_stage:
            self._stage, self._stage_started = stage, now
        self._done, self._total = done, total
        if new_stage or now - self._announced >= ANNOUNCE_SECONDS:
            self._announced = now
            self._announce(self.line())
        if now - self._logged >= LOG_SECONDS:
            self._logged = now
            log.info("%s", self.line())

    def line(self) -> str:
        """E.g. "scan: verifying candidate pairs: 12,000 of 40,000, about 3 min left"."""
        if not self._stage:
            return "scan: starting"
        return f"scan: {self._stage}: {self._done:,} of {self._total:,}{self._time_left()}"

    def _time_left(self) -> str:
        elapsed = self._clock() - self._stage_started
        if self._done <= 0 or self._done >= self._total or elapsed <= 0:
            return ""
        left = elapsed * (self._total - self._done) / self._done
        if left < 90:
            return f", about {max(1, round(left))} s left"
        if left < 5400:
            return f", about {round(left / 60)} min left"
        return f", about {left / 3600:.1f} h left"
