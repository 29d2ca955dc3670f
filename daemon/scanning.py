"""Scanning: find the pairs, form the groups, write the reports.

Scans are incremental: only contents analysed since the last scan are compared with the
rest, and the pairs found are kept in the state. Pairs are stored down to
``PAIR_FLOOR`` (or the threshold, if lower), so moving the threshold within that range
needs no new comparison; a lower threshold than any stored makes the scan a full one.

A scan with nothing to do need not run at all: ``reports_current`` tells when no file,
no decision and no input (``scan_inputs``) changed since the last successful scan and its
reports are still there. The service and ``dupe-scanner scan`` both ask it first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Connection, Engine

from dupe_scanner.backends.base import Backend
from dupe_scanner.groups import KINSHIP, DuplicateGroup, FileEntry, group_with_copies
from dupe_scanner.keep import review_group
from dupe_scanner.reports import ReportOutcome, reports_present, thumbnails_beside, write_reports
from dupe_scanner.settings import KeepSettings, ReportSettings
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import decisions as decision_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.contents import ScanRecord
from dupe_scanner.store.database import read_transaction, write_transaction

log = logging.getLogger(__name__)

PAIR_FLOOR = KINSHIP
GONE_RETENTION_SECONDS = 7 * 86400
# How long the analysis of a content whose last file went away is kept, in case the file
# reappears elsewhere (a move between watched folders is a delete and a create).
ORPHAN_GRACE_SECONDS = 120.0
FLOOR_KEY = "pairs_floor"
COMPARISON_KEY = "pairs_comparison"
INPUTS_KEY = "scan_inputs"  # the last successful scan's ``scan_inputs``

# Told how a scan goes: (stage, done, total), e.g. ("writing reports", 0, 1). Stages are
# said as what is being done; a stage may report its own counts from inside (the pair
# search: candidate pairs verified so far and in all) between its first and last call.
ScanProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ScanOutcome:
    groups: list[DuplicateGroup]
    compared: int | None  # contents compared with the rest; None for a full scan
    files: int
    reports: ReportOutcome
    inputs: str = ""  # the ``scan_inputs`` the reports were written for

    @property
    def duplicate_files(self) -> int:
        return sum(len(group.members) for group in self.groups)


def collect_garbage(engine: Engine, backend: Backend, now: float) -> int:
    """Forget contents that no file holds any more: in the state, then in the backend.

    Orphans are chosen and deleted under the write lock, so a file indexed meanwhile
    keeps its content. A crash before the backend forgets them leaves documents the
    state does not know, which ``status --repair`` removes.
    """
    with write_transaction(engine) as connection:
        orphans = content_store.orphaned_contents(connection, gone_before=now - ORPHAN_GRACE_SECONDS)
        content_store.delete_contents(connection, orphans)
        file_store.forget_gone(connection, now - GONE_RETENTION_SECONDS)
    if orphans:
        backend.forget(orphans)
    return len(orphans)


def update_pairs(engine: Engine, backend: Backend, threshold: float, full: bool, progress: ScanProgress | None = None) -> int | None:
    """Ask the backend for the pairs it has not been asked about yet; None means a full comparison."""
    floor = min(PAIR_FLOOR, threshold)
    with read_transaction(engine) as connection:
        stored_floor = content_store.get_meta(connection, FLOOR_KEY)
        stored_comparison = content_store.get_meta(connection, COMPARISON_KEY)
        changed = content_store.needing_scan(connection)
    if full or stored_floor is None or float(stored_floor) > floor or stored_comparison != backend.comparison:
        changed_or_all = None
    else:
        changed_or_all = changed
    if changed_or_all is not None and not changed_or_all:
        return 0
    backend.commit()
    found = list(backend.find_pairs(changed_or_all, floor, progress))
    with write_transaction(engine) as connection:
        content_store.replace_pairs(connection, found, changed_or_all)
        content_store.mark_scanned(connection, changed)
        content_store.set_meta(connection, FLOOR_KEY, repr(floor))
        content_store.set_meta(connection, COMPARISON_KEY, backend.comparison)
    return None if changed_or_all is None else len(changed_or_all)


def current_groups(
    engine: Engine, threshold: float, unscored_are_far: bool, keep: KeepSettings = KeepSettings()
) -> tuple[list[DuplicateGroup], int]:
    """Groups of indexed files, from the stored content pairs and byte-identical files,
    each reviewed by the keep rules and the decisions in force.

    ``unscored_are_far``: the backend compared every pair, so a pair it did not report is
    far apart (see ``Backend.compares_every_pair``).
    """
    # Only pictures that match something, and byte-identical copies, can be in a group: the
    # rest of the library (most of it) is never read.
    with read_transaction(engine) as connection:
        matched = content_store.matched_contents(connection, threshold)
        content_pairs = [(pair.first, pair.second, pair.score) for pair in content_store.pairs_among(connection, matched)]
        entries = [
            FileEntry(f.path, f.size, f.mtime_ns / 1e9, f.width, f.height, f.format, f.content_hash)
            for f in file_store.files_holding(connection, matched | file_store.copied_contents(connection))
        ]
        file_count = file_store.indexed_count(connection)
        decisions = decision_store.load(connection)
    groups = group_with_copies(
        entries, content_pairs, threshold, unscored_are_far=unscored_are_far, forbidden_contents=decisions.forbidden_pairs()
    )
    reviewed = [replace(group, review=review_group(group.members, keep, decisions)) for group in groups]
    return reviewed, file_count


def scan_inputs(
    connection: Connection,
    threshold: float,
    reports_dir: Path,
    report_settings: ReportSettings,
    keep: KeepSettings,
    watched_folders: Sequence[Path],
) -> str:
    """What, besides the files, shapes the reports: the settings a scan is given and the
    decisions in force (a decision's revision, not the decisions themselves)."""
    decided = decision_store.revision(connection)
    return repr((threshold, report_settings, str(reports_dir), keep, [str(folder) for folder in watched_folders], decided))


def reports_current(connection: Connection, inputs: str, reports_dir: Path, comparison: str) -> ScanRecord | None:
    """The last successful scan, if the reports it wrote still show what a scan now would:
    no file changed since it started, no content awaits comparison, its inputs were
    ``inputs``, the pairs were found by the backend's ``comparison``, and the reports are
    there. None when a scan has work to do.

    A few indexed lookups whatever the library's size (``file_store.changed_since``). A
    failed scan left the reports as they were: it does not count.
    """
    last = content_store.last_successful_scan(connection)
    if last is None or content_store.get_meta(connection, INPUTS_KEY) != inputs:
        return None
    if content_store.get_meta(connection, COMPARISON_KEY) != comparison or not reports_present(reports_dir):
        return None
    return None if file_store.changed_since(connection, last.started_at) else last


def run_scan(
    engine: Engine,
    backend: Backend,
    threshold: float,
    reports_dir: Path,
    report_settings: ReportSettings,
    full: bool = False,
    clock: Callable[[], float] = time.time,
    keep: KeepSettings = KeepSettings(),
    thumbnail_cache: Path | None = None,
    progress: ScanProgress | None = None,
    watched_folders: Sequence[Path] = (),
) -> ScanOutcome:
    started = clock()
    with write_transaction(engine) as connection:
        # Read as the scan starts: a decision made while it runs makes the next one run too.
        inputs = scan_inputs(connection, threshold, reports_dir, report_settings, keep, watched_folders)
        scan_id = content_store.start_scan(connection, started, threshold, full)
    try:
        with _stage(progress, "forgetting deleted images"):
            collect_garbage(engine, backend, started)
        with _stage(progress, "comparing images"):
            compared = update_pairs(engine, backend, threshold, full, progress)
        with _stage(progress, "forming groups"):
            groups, file_count = current_groups(engine, threshold, backend.compares_every_pair, keep)
        with _stage(progress, "writing reports"):
            reports = write_reports(
                groups, reports_dir, report_settings, threshold,
                thumbnail_cache=thumbnail_cache or thumbnails_beside(engine.url.database),
                watched_folders=watched_folders,
            )
    except Exception as error:
        with write_transaction(engine) as connection:
            content_store.finish_scan(connection, scan_id, clock(), 0, 0, error=str(error))
        raise
    outcome = ScanOutcome(groups, compared, file_count, reports, inputs)
    with write_transaction(engine) as connection:
        content_store.finish_scan(connection, scan_id, clock(), len(groups), outcome.duplicate_files)
        content_store.set_meta(connection, INPUTS_KEY, inputs)
    log.info(
        "scan: %d files, %s, %d groups with %d files",
        file_count,
        "compared all" if compared is None else f"compared {compared} new",
        len(groups),
        outcome.duplicate_files,
    )
    return outcome


@contextmanager
def _stage(progress: ScanProgress | None, name: str) -> Iterator[None]:
    if progress is not None:
        progress(name, 0, 1)
    yield
    if progress is not None:
        progress(name, 1, 1)
