"""The intake stage: what happens on disk, turned into rows of the files table.

``Intake`` is the main loop, on the main thread, and the only owner of the stability
tracker. The watcher (``watching``) puts hints into its mailbox; a changed file is
marked pending once it has settled (``stability``), a deleted one gone, a moved one
renamed (keeping its analysis). The mailbox also carries work for the main loop from
other threads (the live settings post their changes as callables) and ``None``, which
only wakes it (a signal).

``ReconcileWalk`` is the safety net for what the hints missed: a walk of each watched
folder compared with the rows (``reconcile``), at start-up, on the reconcile schedule
and when a watcher lost events. It runs as a ``Coalesced`` job on the scheduler's
threads, and hands the files it found still being written to the intake.

Both wake the queue worker when rows become pending, and tell the scan job when
something the reports show changed.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from dupe_scanner.errors import is_bug
from dupe_scanner.memory import release_memory
from dupe_scanner.reconcile import reconcile
from dupe_scanner.service.jobs import Coalesced
from dupe_scanner.service.stability import Settled, StabilityTracker
from dupe_scanner.service.watching import CHANGED, DELETED, MOVED, RESCAN, Hint, path_filter_for
from dupe_scanner.settings import Settings, WatchSettings
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import write_transaction
from dupe_scanner.store.files import FileStat

log = logging.getLogger("dupe_scanner.service")

HINT_BATCH = 5000
SETTLE_GRACE_SECONDS = 1.0


class Intake:
    """The main loop: hints in, rows out; see the module's docstring."""

    def __init__(
        self,
        engine: Engine,
        settings: Callable[[], Settings],
        messages: queue.SimpleQueue,
        tracker: StabilityTracker,
        *,
        clock: Callable[[], float],
        wake_queue: Callable[[], None],
        note_change: Callable[[], None],
        reconcile: Callable[[Iterable[Path]], None],
    ):
        self._engine = engine
        self._settings = settings
        self._messages = messages
        self._tracker = tracker
        self._clock = clock
        self._wake_queue = wake_queue
        self._note_change = note_change
        self._reconcile = reconcile
        self.beat = time.monotonic()  # when the loop last came round (``health`` checks it)

    def run(self, stop: threading.Event, take_sighup: Callable[[], bool], on_sighup: Callable[[], None]) -> None:
        """Loop until ``stop`` is set; ``on_sighup`` runs here when ``take_sighup()`` says a
        SIGHUP came."""
        while not stop.is_set():
            self.beat = time.monotonic()
            batch = self._next_batch()
            if stop.is_set():
                return
            if take_sighup():
                on_sighup()
            try:
                self._handle(batch)
                settled = self._tracker.poll()
                if settled:
                    self._settled(settled)
            except Exception as error:
                log.error("handling file changes failed: %s; the next reconcile walk repairs what was missed",
                          error, exc_info=is_bug(error))
                self._reconcile(w.path for w in self._settings().watch)

    def _next_batch(self) -> list:
        """What the mailbox holds, waiting at most until the next file may have settled."""
        due = self._tracker.next_due()
        timeout = 1.0 if due is None else min(max(due - time.monotonic(), 0.02), 1.0)
        batch = []
        try:
            batch.append(self._messages.get(timeout=timeout))
            while len(batch) < HINT_BATCH:
                batch.append(self._messages.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _handle(self, batch: list) -> None:
        hints: list[Hint] = []
        for item in batch:
            if item is None:
                continue
            if callable(item):
                self._apply_hints(hints)
                hints = []
                item()
            else:
                hints.append(item)
        self._apply_hints(hints)

    def _apply_hints(self, hints: list[Hint]) -> None:
        if not hints:
            return
        operations: list[Hint] = []
        rescan: set[Path] = set()
        for hint in hints:
            if hint.kind == CHANGED:
                self._tracker.touch(hint.path)
            elif hint.kind == DELETED:
                if hint.is_directory:
                    self._tracker.forget_under(hint.path)
                else:
                    self._tracker.forget(hint.path)
                operations.append(hint)
            elif hint.kind == MOVED and not hint.is_directory:
                if hint.path in self._tracker:
                    self._tracker.rename(hint.path, hint.moved_to)
                else:
                    operations.append(hint)
            elif hint.kind == RESCAN:
                rescan.add(hint.root)
            # A folder's move arrives as the moves of its files as well: nothing more to do.
        if operations:
            self._record(operations)
        if rescan:
            self._reconcile(rescan)

    def _record(self, operations: list[Hint]) -> None:
        now = self._clock()
        changed = False
        unknown: list[Path] = []
        with write_transaction(self._engine) as connection:
            for hint in operations:
                if hint.kind == DELETED:
                    if hint.is_directory:
                        changed |= file_store.mark_gone_under(connection, str(hint.path), now) > 0
                    else:
                        changed |= file_store.mark_gone(connection, [str(hint.path)], now) > 0
                    continue
                try:
                    stat = FileStat.of(os.stat(hint.moved_to))
                except OSError:  # moved and gone again
                    changed |= file_store.mark_gone(connection, [str(hint.path)], now) > 0
                    continue
                if file_store.move(connection, str(hint.path), str(hint.moved_to), stat, now):
                    changed = True
                else:
                    unknown.append(hint.moved_to)  # never seen under the old name: a new file
        self._tracker.touch_all(unknown)
        if changed:
            self._note_change()
            self._wake_queue()

    def _settled(self, settled: Settled) -> None:
        now = self._clock()
        news = 0
        with write_transaction(self._engine) as connection:
            ready = []
            filters = [path_filter_for(watch) for watch in self._settings().watch]
            for path in settled.stable:
                if not any(path_filter.wants(path) for path_filter in filters):
                    continue  # its folder stopped being watched while it settled
                try:
                    stat = FileStat.of(os.stat(path))
                except OSError:
                    settled.vanished.append(path)
                    continue
                news += file_store.mark_seen(connection, str(path), stat, now)
                ready.append(str(path))
            file_store.defer(connection, ready, 0.0)  # settled: due now (reconcile may have held it back)
            if settled.vanished and file_store.mark_gone(connection, [str(p) for p in settled.vanished], now):
                self._note_change()
        if settled.stable:
            log.debug("%d files settled, %d of them new or changed", len(settled.stable), news)
            self._wake_queue()

    def unwatch(self, watches: Iterable[WatchSettings]) -> None:
        """Folders no longer watched (the live settings, on this loop): their files leave."""
        now = self._clock()
        with write_transaction(self._engine) as connection:
            for watch in watches:
                self._tracker.forget_under(watch.path)
                gone = file_store.mark_gone_under(connection, str(watch.path), now)
                log.info("%s is no longer watched: %d files leave the reports", watch.path, gone)
        self._note_change()


class ReconcileWalk:
    """The reconcile walk of the watched folders; see the module's docstring."""

    def __init__(
        self,
        engine: Engine,
        settings: Callable[[], Settings],
        scheduler: BackgroundScheduler,
        post: Callable[[Hint], None],
        *,
        clock: Callable[[], float],
        wake_queue: Callable[[], None],
        note_change: Callable[[], None],
    ):
        self._engine = engine
        self._settings = settings
        self._post = post
        self._clock = clock
        self._wake_queue = wake_queue
        self._note_change = note_change
        self.runs = Coalesced("reconcile", scheduler, self._reconcile)

    def request(self, roots: Iterable[Path]) -> None:
        """Walk these watched folders soon."""
        self.runs.request(roots)

    def request_all(self) -> None:
        """Walk every watched folder soon (the reconcile schedule)."""
        self.runs.request(w.path for w in self._settings().watch)

    def _reconcile(self, roots: set) -> None:
        watches = {watch.path: watch for watch in self._settings().watch}
        for root in sorted(roots):
            watch = watches.get(root)
            if watch is None:
                continue  # no longer watched
            started = self._clock()
            changes = reconcile(self._engine, path_filter_for(watch), now=started, drop_unwanted=True)
            if not changes:
                continue
            self._hold_fresh(root, [*changes.new, *changes.changed], started)
            self._note_change()
            self._wake_queue()
        release_memory()

    def _hold_fresh(self, root: Path, paths: list[str], now: float) -> None:
        """Files the walk found that changed moments ago may still be being written: hold
        them back and let the stability tracker release them."""
        stable_seconds = self._settings().index.stable_seconds
        if stable_seconds <= 0:
            return
        fresh = []
        for path in paths:
            try:
                if now - os.stat(path).st_mtime < stable_seconds + SETTLE_GRACE_SECONDS:
                    fresh.append(path)
            except OSError:
                continue
        if not fresh:
            return
        with write_transaction(self._engine) as connection:
            file_store.defer(connection, fresh, now + stable_seconds + 60.0)
        for path in fresh:
            self._post(Hint(CHANGED, root, Path(path)))
