"""What each command-line verb does, in terms of the parts ``composition`` builds.

Each action prints what a person wants to know and returns the exit code.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from dupe_scanner.backends.flow_drift import compare
from dupe_scanner.composition import components
from dupe_scanner.display import visible
from dupe_scanner.errors import BackendUnavailable, StateInUse, UsageError
from dupe_scanner.indexer import Outcome
from dupe_scanner.pathfilter import PathFilter
from dupe_scanner.reconcile import reconcile
from dupe_scanner.scanning import reports_current, run_scan, scan_inputs
from dupe_scanner.settings import DEFAULT_EXCLUDES, Settings
from dupe_scanner.store import LOCK_WAIT_SECONDS
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import decisions as decision_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import read_transaction, write_transaction
from dupe_scanner.store.lock import hold_state


def _say(text: str) -> None:
    print(text, flush=True)


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "never"


def status(settings: Settings, failures: int, repair: bool, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    with components(settings, lock_wait=lock_wait) as parts:
        health = parts.backend.health()
        with read_transaction(parts.engine) as connection:
            counts = file_store.counts_by_state(connection)
            contents = content_store.content_count(connection)
            awaiting = content_store.awaiting_scan_count(connection)
            last = content_store.last_scan(connection)
            failed = file_store.failures(connection, failures)
            decisions = decision_store.count(connection)
        _say(f"settings: {settings.source or 'built-in defaults'}")
        _say(f"state: {settings.paths.state}")
        backend_line = f"backend: {settings.backend.kind}: {health.detail}"
        _say(backend_line)
        _say(
            f"files: {counts['indexed']} indexed, {counts['pending']} pending, {counts['failed']} failed, "
            f"{counts['gone']} gone; {contents} distinct contents analysed"
        )
        if awaiting:  # a scan stopped in the middle leaves the rest here, and the next goes on with them
            _say(f"comparison: {awaiting} of {contents} contents not compared yet ('dupe-scanner scan', or the service, compares them)")
        _say(f"decisions: {decisions}" + (" ('dupe-scanner decide list' lists them)" if decisions else ""))
        if last:
            _say(
                f"last scan: {_when(last.finished_at)}, threshold {last.threshold}, "
                f"{last.groups} groups with {last.duplicate_files} files"
                + (f", failed: {last.error}" if last.error else "")
            )
        else:
            _say("last scan: never (run 'dupe-scanner scan')")
        _say_reports(settings.paths.reports)
        _say_service(settings)
        repaired = _say_drift(parts, repair, settings)
        if failed:
            _say("problems:")
            for failure in failed:
                reason = failure.error.removeprefix(f"{failure.path}: ")  # most reasons start with the path
                _say(f"  {visible(failure.path)}: {visible(reason)}")
        if not repaired:
            return 2
        return 0 if health.reachable else 1


def _say_reports(reports: Path) -> None:
    report = reports / "duplicates.json"
    if report.exists():
        _say(f"reports: {reports} (written {_when(report.stat().st_mtime)})")
    else:
        _say(f"reports: {reports} (none yet)")


def _say_service(settings: Settings) -> None:
    try:
        from dupe_scanner.service.status import describe_service
    except ImportError:
        return
    for line in describe_service(settings):
        _say(line)


def _say_drift(parts, repair: bool, settings: Settings) -> bool:
    """Flow keeps its own documents; say (and with ``repair`` mend) where they and the state differ.

    False when a repair was asked for and refused.
    """
    document_ids = getattr(parts.backend, "document_ids", None)
    if document_ids is None:
        return True  # the embedded backend keeps its features in the state: nothing can drift
    try:
        parts.backend.commit()
        with read_transaction(parts.engine) as connection:
            known = content_store.content_hashes(connection)
        drift = compare(document_ids(), known)
        _say(f"drift: {drift.summary()}")
        if repair and not drift.in_step:
            # Repair only while nothing indexes: a document stored a moment before the state
            # records its content would look unknown and be deleted (and indexed again).
            # Held through the repair, so the service cannot start in the middle of it either.
            with hold_state(settings.paths.state, "dupe-scanner status --repair"):
                parts.backend.forget(drift.unknown_to_state)
                with write_transaction(parts.engine) as connection:
                    requeued = file_store.requeue_contents(connection, drift.missing_in_flow, time.time())
                    content_store.delete_contents(connection, drift.missing_in_flow)
            _say(
                f"repaired: {len(drift.unknown_to_state)} unknown documents deleted from Flow, "
                f"{requeued} files queued to be indexed again"
            )
    except StateInUse as error:
        _say(
            f"not repaired: the state is in use by {error.holder}; stop it (systemctl stop dupe-scanner), "
            "run 'dupe-scanner status --repair', then start it again"
        )
        return False
    except BackendUnavailable as error:
        _say(f"drift: cannot be checked: {error}")
    return True


def index(
    settings: Settings, directory: Path, recursive: bool, retry_failed: bool, *, lock_wait: float = LOCK_WAIT_SECONDS
) -> int:
    path_filter = PathFilter(directory, exclude=DEFAULT_EXCLUDES, recursive=recursive)
    with components(settings, lock_wait=lock_wait) as parts:
        health = parts.backend.health()
        if not health.reachable:
            raise BackendUnavailable(health.detail)
        changes = reconcile(parts.engine, path_filter)
        with write_transaction(parts.engine) as connection:
            if retry_failed:
                file_store.requeue_failed(connection, time.time())
        with read_transaction(parts.engine) as connection:
            jobs = file_store.pending_under(connection, str(directory))
        _say(
            f"{visible(str(directory))}: {len(changes.new)} new, {len(changes.changed)} changed, "
            f"{len(changes.vanished)} gone; {len(jobs)} to index"
        )
        with _bar(len(jobs), "images") as bar:
            summary = parts.indexer.run(jobs, on_done=lambda _job, _outcome: bar.update())
        _say(f"indexed: {summary.line()}")
        if summary.counts[Outcome.FAILED]:
            _say("some images could not be read; 'dupe-scanner status' lists them with the reason")
        if summary.stopped_because:
            _say(f"stopped: {summary.stopped_because}")
            return 1
        if summary.counts[Outcome.RETRY]:
            _say(f"{summary.counts[Outcome.RETRY]} images left pending; run index again later")
            return 1
        return 0


def scan(settings: Settings, threshold: float, full: bool, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    watched = [watch.path for watch in settings.watch]
    with components(settings, lock_wait=lock_wait) as parts:
        if not full:
            # The service's rule (``ScanJob``): nothing new since the last scan, nothing to do.
            with read_transaction(parts.engine) as connection:
                inputs = scan_inputs(connection, threshold, settings.paths.reports, settings.report, settings.keep, watched)
                current = reports_current(connection, inputs, settings.paths.reports, parts.backend.comparison)
            if current is not None:
                _say(
                    f"Nothing changed since the scan of {_when(current.started_at)}: the reports in "
                    f"{settings.paths.reports} are current ('scan --full' compares every image again)."
                )
                return 0
        health = parts.backend.health()
        if not health.reachable:
            raise BackendUnavailable(health.detail)
        with StageBars() as progress:
            outcome = run_scan(
                parts.engine, parts.backend, threshold, settings.paths.reports, settings.report, full=full,
                keep=settings.keep, progress=progress, watched_folders=watched,
            )
    _say(f"Scanned {outcome.files} images at threshold {threshold}.")
    _say(f"Found {outcome.group_count} duplicate groups with {outcome.duplicate_files} images.")
    for path in outcome.reports.files:
        _say(f"Report: {path}")
    return 0


def _bar(total: int, unit: str, stage: str | None = None) -> tqdm:
    """A progress bar with an estimate on stderr, only when stderr is a terminal: scripts
    and the journal get no bar."""
    return tqdm(total=total, unit=unit, desc=stage, file=sys.stderr, disable=None)


class StageBars:
    """A scan's progress (``scanning.ScanProgress``) as one bar per stage."""

    def __init__(self) -> None:
        self._stage: str | None = None
        self._bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage, self._bar = stage, _bar(total, "", stage)
        if self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def clear(settings: Settings, confirmed: bool, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    if not confirmed:
        if not sys.stdin.isatty():
            raise UsageError("clear empties the index and the state: pass --yes to confirm")
        answer = input(f"Empty the {settings.backend.kind} index and the state at {settings.paths.state}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            _say("nothing cleared")
            return 0
    with components(settings, lock_wait=lock_wait) as parts:
        # The state first: were the backend's clear to fail half-way, what it still holds
        # is unknown to the state, which `status --repair` mends; the reverse is not seen.
        with write_transaction(parts.engine) as connection:
            content_store.delete_all_contents(connection)
            file_store.delete_all(connection)
        parts.backend.clear()
    _say("index and state cleared; reports were left as they are until the next scan")
    return 0
