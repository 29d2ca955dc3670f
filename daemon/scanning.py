"""Scanning: find the pairs, form the groups, write the reports.

Scans are incremental: only contents analysed since the last scan are compared with the
rest, and the pairs found are kept in the state. Pairs are stored down to
``PAIR_FLOOR`` (or the threshold, if lower), so moving the threshold within that range
needs no new comparison; a lower threshold than any stored makes the scan a full one.

A scan with nothing to do need not run at all: ``reports_current`` tells when no file,
no decision and no input (``scan_inputs``) changed since the last successful scan and its
reports are still there. The service and ``dupe-scanner scan`` both ask it first. A scan
that runs and whose changes cannot have moved a group (new pictures that match nothing, a
deleted one that matched nothing) leaves the reports as they are without reading what the
groups are made from (``group_witness``); one that reads it and finds it is what the last
reports were made from leaves them too, without forming a group (``report_source``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Connection, Engine

from dupe_scanner.backends.base import VERIFIED, Backend, PairVerifier
from dupe_scanner.code_version import code_digest
from dupe_scanner.decisions import Decisions
from dupe_scanner.errors import FileWriteError
from dupe_scanner.found_pairs import FoundPairs
from dupe_scanner.group_witness import REPORTED_FILES_KEY, ReportedFiles, Witness, groups_unmoved
from dupe_scanner.groups import KINSHIP, DuplicateGroup, FileEntry, group_with_copies
from dupe_scanner.keep import review_group
from dupe_scanner.report_source import WrittenReports, source_digest
from dupe_scanner.reports import PartialComparison, ReportOutcome, report_stamps, reports_kept, reports_present, thumbnails_beside, write_reports
from dupe_scanner.settings import KeepSettings, ReportSettings
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import decisions as decision_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.contents import ScanRecord
from dupe_scanner.store.database import lock_wait_of, read_transaction, write_transaction

log = logging.getLogger(__name__)

PAIR_FLOOR = KINSHIP
# Pictures compared, and their pairs stored, at a time. A first scan of a large library
# takes hours (about a day for a million pictures on two cores); stored part by part, a scan
# stopped by a restart, a reboot or a kill loses at most a part's work, and holds at most a
# part's verdicts before storing them.
COMPARISON_PART = 5_000
# Between two parts the reports are written from the pairs stored so far, so a first scan of a
# large library shows its first groups within minutes rather than at its end: at most this
# often, and taking at most this share of the scan's time (at a million files, forming every
# group and writing every report takes about 11 s).
INTERIM_REPORT_SECONDS = 300.0
INTERIM_REPORT_SHARE = 0.1
COMPARING = "comparing images"
INTERIM_STAGE = "writing interim reports"  # within COMPARING, between its parts (``InterimReports``)
STAGE_STARTS, STAGE_ENDS = "scan stage: %s", "scan stage done: %s"
GONE_RETENTION_SECONDS = 7 * 86400
# Completing a group (``complete_groups``): in a group of at most this many pictures, a member
# that matches the anchor at less than ``WEAK_TIE`` is compared with every other member.
# A picture that matches some look-alike only at the score floor (nebulae on a black sky,
# tiles of one pattern wallpaper) gathers a group of strangers around it, each matching it
# and none ever compared with the others; compared, they are far apart, and grouping takes
# them out. Not larger groups: a popular picture's dozens of copies were proposed and
# compared with each other almost all, and its heavily edited copies (a 40 % crop, a hue
# turned) are far apart from one another by nature. Chosen on the labelled set's tune split:
# up to 64 pictures lost one of its pairs, up to 16 none. Not members tied strongly: two
# crops of one photograph at different offsets are far apart, and both belong with it.
COMPLETE_UP_TO = 16
WEAK_TIE = 0.65  # a crop of up to 40 % and nothing else scores 0.68 and more
COMPLETION_ROUNDS = 3  # a group formed again may hold pairs never compared once more; not forever
# Verified pairs scored again at a time after an upgrade that only tightens the verifier
# (``rejudge_verified``): a million pictures' are never all held, and a scan stopped then
# keeps the pages it stored.
REJUDGE_PAGE = 50_000
# How long the analysis of a content whose last file went away is kept, in case the file
# reappears elsewhere (a move between watched folders is a delete and a create).
ORPHAN_GRACE_SECONDS = 120.0
FLOOR_KEY = "pairs_floor"
COMPARISON_KEY = "pairs_comparison"
INPUTS_KEY = "scan_inputs"  # the last successful scan's ``scan_inputs``
REPORTS_KEY = "reports_written"  # what the last reports were written from (``report_source``)
# Slack, beyond the write lock's wait, between a writer reading the clock and committing.
CLOCK_TO_COMMIT_SECONDS = 5.0

# Told how a scan goes: (stage, done, total), e.g. ("writing reports", 0, 1). Stages are
# said as what is being done; a stage may report its own counts from inside (the pair
# search: candidate pairs verified so far and in all) between its first and last call.
ScanProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ScanOutcome:
    group_count: int
    duplicate_files: int  # files in all groups
    compared: int | None  # contents compared with the rest; None for a full scan
    files: int
    reports: ReportOutcome
    inputs: str = ""  # the ``scan_inputs`` the reports were written for


def collect_garbage(engine: Engine, backend: Backend, now: float, witness: Witness | None = None) -> int:
    """Forget contents that no file holds any more: in the state, then in the backend.

    Orphans are chosen and deleted under the write lock, so a file indexed meanwhile
    keeps its content. A crash before the backend forgets them leaves documents the
    state does not know, which ``status --repair`` removes.
    """
    with write_transaction(engine) as connection:
        orphans = content_store.orphaned_contents(connection, gone_before=now - ORPHAN_GRACE_SECONDS)
        forgotten_rows = file_store.forget_gone(connection, now - GONE_RETENTION_SECONDS)
        if witness is not None:
            witness.forgetting(connection, orphans, forgotten_rows)
        content_store.delete_contents(connection, orphans)
    if orphans:
        backend.forget(orphans)
    return len(orphans)


def update_pairs(
    engine: Engine,
    backend: Backend,
    threshold: float,
    full: bool,
    progress: ScanProgress | None = None,
    between_parts: Callable[[int, int], None] | None = None,
    witness: Witness | None = None,
) -> int | None:
    """Ask the backend for the pairs it has not been asked about yet; None means a full comparison.

    A new comparison that only tightens the stored pairs' has their verified pairs scored again
    (``rejudge_verified``); any other new comparison is a full one. A full comparison (asked
    for, a floor lower than the stored pairs', another comparison) first marks every content
    as awaiting comparison under the new floor and comparison, and is then carried out as any
    other: the contents awaiting comparison are compared
    ``COMPARISON_PART`` at a time in the order they were analysed, and each part's pairs are
    stored, its contents marked compared, as the part ends. A part's contents are paired with
    the contents before them and those not awaiting comparison, never with the rest of the
    parts (``pending``, see ``Backend.find_pairs``): the parts store what one comparison of
    them all would, and a scan that is stopped resumes at the part it was in.
    ``between_parts(compared, pictures)`` is called after each part but the last, once its
    pairs are stored: ``compared`` of the state's ``pictures`` need no comparison any more,
    those compared by a scan that was stopped before this one included, since the reports
    written then show their pairs too. ``witness`` sees every write to the pairs.
    """
    witness = witness or Witness(threshold)
    floor = min(PAIR_FLOOR, threshold)
    with read_transaction(engine) as connection:
        stored_floor = content_store.get_meta(connection, FLOOR_KEY)
        stored_comparison = content_store.get_meta(connection, COMPARISON_KEY)
    everything = full or stored_floor is None or float(stored_floor) > floor
    if not everything and stored_comparison != backend.comparison:
        witness.rewriting()
        if stored_comparison is not None and isinstance(backend, PairVerifier) and backend.tightens(stored_comparison):
            rejudge_verified(engine, backend, found_by=stored_comparison, comparison=backend.comparison)
        else:
            everything = True
    if everything:
        witness.rewriting()
        with write_transaction(engine) as connection:
            content_store.mark_all_for_scan(connection)
            content_store.set_meta(connection, FLOOR_KEY, repr(floor))
            content_store.set_meta(connection, COMPARISON_KEY, backend.comparison)
    with read_transaction(engine) as connection:
        pending = content_store.needing_scan(connection)
        pictures = content_store.content_count(connection)
    if pending:
        backend.commit()
    for start in range(0, len(pending), COMPARISON_PART):
        part = pending[start : start + COMPARISON_PART]
        told = progress if len(pending) <= COMPARISON_PART else _within_part(progress, start, len(part), len(pending))
        found = FoundPairs.collect(backend.find_pairs(part, floor, told, pending=pending[start:]))
        with write_transaction(engine) as connection:
            witness.storing(connection, part, found)
            content_store.replace_pairs(connection, found, part)
            content_store.mark_scanned(connection, part)
        if len(pending) > COMPARISON_PART:
            log.info("compared %d of %d pictures; their pairs are stored", start + len(part), len(pending))
        if between_parts is not None and start + len(part) < len(pending):
            between_parts(pictures - (len(pending) - start - len(part)), pictures)
    return None if everything else len(pending)


def rejudge_verified(engine: Engine, backend: PairVerifier, found_by: str, comparison: str) -> None:
    """Make the stored pairs, ``found_by`` one comparison, the backend's ``comparison``'s, where
    that only tightens the first (``PairVerifier.tightens``): the pairs the first verified are
    scored again, and only they can change. Each is asked from its newer content's side, as
    the comparison that found it asked it: a verdict may depend on the side.

    A new comparison otherwise compares every picture again: a first scan's work, a day at a
    million pictures, for a check that at most rejects some of the pairs reported. Stopped
    half-way, the comparison is still recorded as the old one and the next scan starts it again.
    """
    log.info("pairs were found by %s; %s only tightens it: scoring its verified pairs again", found_by, comparison)
    scored = rejected = 0
    after: tuple[str, str] | None = None
    while True:
        with read_transaction(engine) as connection:
            page, after = content_store.pairs_newer_first(connection, VERIFIED, after, REJUDGE_PAGE)
        found = FoundPairs.collect(backend.verify_pairs(page))
        with write_transaction(engine) as connection:
            content_store.replace_pairs(connection, found, [])
        scored, rejected = scored + len(page), rejected + sum(1 for pair in found if pair.score < VERIFIED)
        if after is None:
            break
        log.info("scored %d verified pairs again", scored)
    with write_transaction(engine) as connection:
        content_store.set_meta(connection, COMPARISON_KEY, comparison)
    log.info("%d of the %d verified pairs scored again no longer verify", rejected, scored)


def _within_part(progress: ScanProgress | None, before: int, size: int, total: int) -> ScanProgress | None:
    """A part's progress told as the whole comparison's, in pictures: one estimate of the
    time left for all the parts, not one a part."""
    if progress is None:
        return None

    def told(_step: str, done: int, of: int) -> None:
        progress(COMPARING, before + (size * done // of if of else 0), total)

    return told


@dataclass(frozen=True)
class Grouping:
    """What forming the groups reads from the state."""

    content_pairs: list[tuple[str, str, float]]
    entries: list[FileEntry]  # the files of matching and byte-identical contents, by path
    file_count: int  # indexed files in all
    decisions: Decisions
    pairs_revision: int = 0  # the pairs' (``content_store.pairs_revision``) when they were read


def read_grouping(engine: Engine, threshold: float) -> Grouping:
    """The pairs grouping weighs at ``threshold`` (``content_store.pairs_grouping_weighs``),
    the files holding the pictures they match or a byte-identical copy, and the decisions.
    The rest of the library (most of it) is never read."""
    with read_transaction(engine) as connection:
        weighed = content_store.pairs_grouping_weighs(connection, threshold)
        content_pairs = [(pair.first, pair.second, pair.score) for pair in weighed]
        matched = {content for pair in weighed if pair.score >= threshold for content in (pair.first, pair.second)}
        entries = [
            FileEntry(f.path, f.size, f.mtime_ns / 1e9, f.width, f.height, f.format, f.content_hash)
            for f in file_store.files_holding(connection, matched | file_store.copied_contents(connection))
        ]
        return Grouping(
            content_pairs, entries, file_store.indexed_count(connection), decision_store.load(connection), content_store.pairs_revision(connection)
        )


def form_groups(grouping: Grouping, threshold: float, unscored_are_far: bool, keep: KeepSettings = KeepSettings()) -> list[DuplicateGroup]:
    """The groups, each reviewed by the keep rules and the decisions in force.

    ``unscored_are_far``: the backend compared every pair, so a pair it did not report is
    far apart (see ``Backend.compares_every_pair``).
    """
    decisions = grouping.decisions
    groups = group_with_copies(
        grouping.entries, grouping.content_pairs, threshold,
        unscored_are_far=unscored_are_far, forbidden_contents=decisions.forbidden_pairs(),
    )
    return [replace(group, review=review_group(group.members, keep, decisions)) for group in groups]


def complete_groups(
    engine: Engine, backend: Backend, threshold: float, grouping: Grouping, keep: KeepSettings = KeepSettings()
) -> tuple[Grouping, list[DuplicateGroup]]:
    """The groups, once the pairs never compared inside the small groups with a weak tie
    (``never_compared``) have been compared by the backend and stored; and what they were
    formed from: ``grouping`` itself when nothing needed comparing.

    Grouping reads a pair never compared as saying nothing (``groups``), so a look-alike that
    matches strangers at the floor holds them in one group. In a library of 16,000 tiles of
    wallpapers and photographs of nebulae a quarter of the wrong pairs reported were such
    pairs (bench/README.md, "Completing small groups"). The pairs are stored, so ``apply`` and
    ``decide``, which form the groups from the state alone, see the groups the reports show.
    A backend that compares every pair has nothing to add.
    """
    groups = form_groups(grouping, threshold, backend.compares_every_pair, keep)
    if backend.compares_every_pair or not isinstance(backend, PairVerifier):
        return grouping, groups
    for _ in range(COMPLETION_ROUNDS):
        missing = never_compared(groups, grouping.content_pairs)
        if not missing:
            break
        found = FoundPairs.collect(backend.verify_pairs(missing))
        with write_transaction(engine) as connection:
            content_store.replace_pairs(connection, found, [])
        log.info("compared %d pairs of grouped pictures never compared before", len(missing))
        grouping, groups = formed_again_around(grouping, groups, [(pair.first, pair.second, pair.score) for pair in found], threshold, keep)
    return grouping, groups


def formed_again_around(
    grouping: Grouping, groups: list[DuplicateGroup], added: list[tuple[str, str, float]], threshold: float, keep: KeepSettings
) -> tuple[Grouping, list[DuplicateGroup]]:
    """``grouping`` with the pairs ``added`` between pictures it holds, and its groups formed
    again where those pairs can move them; the rest as they were.

    Groups are formed within each set of pictures joined by matches (``groups.group_duplicates``
    reads nothing outside it), and pairs added inside groups join no new pictures: only the
    groups of the sets the added pairs touch can change. Forming every group again, and
    reading them all from the state first, cost 2.7 s of a 7.5 s scan of 100 added pictures
    in a library of 16,000, and grows with the library.
    """
    content_pairs = [*grouping.content_pairs, *added]
    around = joined_by_matches({content for first, second, _ in added for content in (first, second)}, content_pairs, threshold)
    part = Grouping(
        [pair for pair in content_pairs if pair[0] in around and pair[1] in around],
        [entry for entry in grouping.entries if entry.content_hash in around],
        grouping.file_count,
        grouping.decisions,
    )
    untouched = [group for group in groups if not any(member.content_hash in around for member in group.members)]
    regrouped = [*untouched, *form_groups(part, threshold, unscored_are_far=False, keep=keep)]
    regrouped.sort(key=lambda group: (-len(group.members), group.members[0].path))
    return replace(grouping, content_pairs=content_pairs), regrouped


def joined_by_matches(start: set[str], content_pairs: Sequence[tuple[str, str, float]], threshold: float) -> set[str]:
    """The contents joined to ``start`` by a chain of pairs scoring ``threshold`` or more, and ``start``."""
    neighbours: dict[str, list[str]] = {}
    for first, second, score in content_pairs:
        if score >= threshold:
            neighbours.setdefault(first, []).append(second)
            neighbours.setdefault(second, []).append(first)
    reached, frontier = set(start), list(start)
    while frontier:
        for other in neighbours.get(frontier.pop(), ()):
            if other not in reached:
                reached.add(other)
                frontier.append(other)
    return reached


def never_compared(groups: Sequence[DuplicateGroup], content_pairs: Sequence[tuple[str, str, float]]) -> list[tuple[str, str]]:
    """The pairs of contents never compared inside each group of at most ``COMPLETE_UP_TO``
    pictures, one of which matches the anchor at less than ``WEAK_TIE``; each once, in order."""
    scores = {(first, second) if first < second else (second, first): score for first, second, score in content_pairs}

    def tie(content: str, anchor: str) -> float:
        return 1.0 if content == anchor else scores.get((content, anchor) if content < anchor else (anchor, content), 0.0)

    missing: set[tuple[str, str]] = set()
    for group in groups:
        pictures = sorted({member.content_hash for member in group.members})
        if len(pictures) > COMPLETE_UP_TO:
            continue
        anchor = next(member.content_hash for member in group.members if member.path == group.anchor)
        weak = {picture for picture in pictures if tie(picture, anchor) < WEAK_TIE}
        missing.update(pair for pair in itertools.combinations(pictures, 2) if pair not in scores and not weak.isdisjoint(pair))
    return sorted(missing)


def current_groups(
    engine: Engine, threshold: float, unscored_are_far: bool, keep: KeepSettings = KeepSettings()
) -> tuple[list[DuplicateGroup], int]:
    """Groups of indexed files, from the stored content pairs and byte-identical files,
    reviewed (``form_groups``), and how many files are indexed."""
    grouping = read_grouping(engine, threshold)
    return form_groups(grouping, threshold, unscored_are_far, keep), grouping.file_count


def scan_inputs(
    connection: Connection,
    threshold: float,
    reports_dir: Path,
    report_settings: ReportSettings,
    keep: KeepSettings,
    watched_folders: Sequence[Path],
) -> str:
    """What, besides the files, shapes the reports: the settings a scan is given, the
    decisions in force (a decision's revision, not the decisions themselves) and the code
    (``code_digest``): a new version that groups or draws otherwise writes the reports again
    at its first scan, though no file changed and nothing is compared again."""
    decided = decision_store.revision(connection)
    folders = [str(folder) for folder in watched_folders]
    return repr((threshold, report_settings, str(reports_dir), keep, folders, decided, code_digest()))


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

    def write(groups: Sequence[DuplicateGroup], partial: PartialComparison | None = None) -> ReportOutcome:
        return write_reports(
            groups, reports_dir, report_settings, threshold,
            thumbnail_cache=thumbnail_cache or thumbnails_beside(engine.url.database),
            watched_folders=watched_folders, partial=partial,
        )

    def write_partial(partial: PartialComparison) -> int:
        groups = form_groups(read_grouping(engine, threshold), threshold, backend.compares_every_pair, keep)
        write(groups, partial)
        return len(groups)

    with write_transaction(engine) as connection:
        # Read as the scan starts: a decision made while it runs makes the next one run too.
        inputs = scan_inputs(connection, threshold, reports_dir, report_settings, keep, watched_folders)
        scan_id = content_store.start_scan(connection, started, threshold, full)
    witness = Witness(threshold)
    try:
        with _stage(progress, "forgetting deleted images"):
            collect_garbage(engine, backend, started, witness)
        with _stage(progress, COMPARING):
            compared = update_pairs(engine, backend, threshold, full, progress, InterimReports(write_partial, started, clock), witness)
        with _stage(progress, "forming groups"):
            # ``scan --full`` writes every report again, whatever it finds, as it compares every pair.
            left_as = " (nothing changed that can move a group: the reports were left as they are)"
            kept = None if full else _unmoved_reports(engine, witness, inputs, reports_dir)
            if kept is None:
                left_as = " (the same as before: the reports were left as they are)"
                grouping = read_grouping(engine, threshold)
                digest = source_digest(inputs, backend.compares_every_pair, grouping.content_pairs, grouping.entries, grouping.decisions)
                kept = None if full else _unchanged_reports(engine, digest, reports_dir, grouping)
                if kept is None:
                    left_as = ""
                    completed, groups = complete_groups(engine, backend, threshold, grouping, keep)
                    if completed is not grouping:  # pairs were added: the reports are made from more
                        grouping = completed
                        digest = source_digest(inputs, backend.compares_every_pair, grouping.content_pairs, grouping.entries, grouping.decisions)
        with _stage(progress, "writing reports"):
            if kept is None:
                reports = write(groups)
                kept = KeptReports(_written(digest, groups, reports), reports, _reported(digest, grouping), grouping.file_count)
    except Exception as error:
        with write_transaction(engine) as connection:
            content_store.finish_scan(connection, scan_id, clock(), 0, 0, error=str(error))
        raise
    written = kept.written
    outcome = ScanOutcome(written.groups, written.duplicate_files, compared, kept.file_count, kept.reports, inputs)
    with write_transaction(engine) as connection:
        content_store.finish_scan(connection, scan_id, clock(), outcome.group_count, outcome.duplicate_files)
        content_store.set_meta(connection, INPUTS_KEY, inputs)
        content_store.set_meta(connection, REPORTS_KEY, written.encoded())
        _keep_reported_files(connection, kept.reported)
    log.info(
        "scan: %d files, %s, %d groups with %d files%s",
        outcome.files,
        "compared all" if compared is None else f"compared {compared} new",
        outcome.group_count,
        outcome.duplicate_files,
        left_as,
    )
    return outcome


class InterimReports:
    """Writes the reports between the parts of a long comparison (``update_pairs``'s
    ``between_parts``), ``INTERIM_REPORT_SECONDS`` at the soonest after the scan started or
    the last ones, and then only if they took at most ``INTERIM_REPORT_SHARE`` of the time
    since. They are not the scan's result: the state does not record them, so the scan's
    end (or the next scan, if it is stopped) writes the reports again.
    """

    def __init__(self, write: Callable[[PartialComparison], int], started: float, clock: Callable[[], float]):
        self.write, self.clock = write, clock  # write(partial) -> the groups written
        self.last, self.cost = started, 0.0

    def __call__(self, compared: int, pictures: int) -> None:
        began = self.clock()
        if began - self.last < max(INTERIM_REPORT_SECONDS, self.cost / INTERIM_REPORT_SHARE):
            return
        try:
            with _logged_stage(INTERIM_STAGE):
                groups = self.write(PartialComparison(compared, pictures))
        except FileWriteError as error:
            log.warning("%s; the scan goes on comparing, and writes the reports again when it ends", error)
        else:
            log.info("reports written with %d of the %d pictures compared: %d groups; the scan goes on", compared, pictures, groups)
        self.last = self.clock()
        self.cost = self.last - began


@dataclass(frozen=True)
class KeptReports:
    """The reports a scan ends with, as the state records them."""

    written: WrittenReports
    reports: ReportOutcome
    reported: ReportedFiles | None  # what they were made from, if the pairs have not changed since
    file_count: int  # indexed files in all


def _unmoved_reports(engine: Engine, witness: Witness, inputs: str, reports_dir: Path) -> KeptReports | None:
    """The last reports, if ``witness`` saw no change that can have moved a group since them
    (``group_witness``), no other was made, and they are all still there; read without
    reading what the groups are made from."""
    with read_transaction(engine) as connection:
        last_scan = content_store.last_successful_scan(connection)
        last = WrittenReports.decoded(content_store.get_meta(connection, REPORTS_KEY))
        reported = ReportedFiles.decoded(content_store.get_meta(connection, REPORTED_FILES_KEY))
        if last_scan is None or last is None or reported is None or reported.digest != last.digest:
            return None
        if content_store.get_meta(connection, INPUTS_KEY) != inputs:
            return None
        since = last_scan.started_at - _commit_allowance(engine)
        if not groups_unmoved(connection, witness, reported, since):
            return None
        file_count = file_store.indexed_count(connection)
    kept = reports_kept(reports_dir, last.files, last.html_pages, last.html_omitted_groups)
    return None if kept is None else KeptReports(last, kept, reported.at_revision(reported.pairs_revision + witness.writes), file_count)


def _unchanged_reports(engine: Engine, digest: str, reports_dir: Path, grouping: Grouping) -> KeptReports | None:
    """The last reports, if they were written from ``digest`` and are all still there
    (``report_source``): what a scan would write again."""
    with read_transaction(engine) as connection:
        last = WrittenReports.decoded(content_store.get_meta(connection, REPORTS_KEY))
    if last is None or last.digest != digest:
        return None
    kept = reports_kept(reports_dir, last.files, last.html_pages, last.html_omitted_groups)
    return None if kept is None else KeptReports(last, kept, _reported(digest, grouping), grouping.file_count)


def _commit_allowance(engine: Engine) -> float:
    """How long before the last scan began a file may have been stamped and still stored after
    it read the groups: a writer reads the clock, then may wait for the write lock."""
    return lock_wait_of(engine) + CLOCK_TO_COMMIT_SECONDS


def _reported(digest: str, grouping: Grouping) -> ReportedFiles:
    return ReportedFiles.of(digest, grouping.pairs_revision, (entry.path for entry in grouping.entries))


def _keep_reported_files(connection: Connection, reported: ReportedFiles | None) -> None:
    """Record what the reports were made from, if the pairs are still those they were made
    from: pairs this scan added to complete the groups, or another process wrote, leave no
    record, and the next scan that changes something reads what the groups are made from."""
    current = reported is not None and content_store.pairs_revision(connection) == reported.pairs_revision
    content_store.set_meta(connection, REPORTED_FILES_KEY, reported.encoded() if current and reported else "")


def _written(digest: str, groups: Sequence[DuplicateGroup], reports: ReportOutcome) -> WrittenReports:
    return WrittenReports(
        digest=digest,
        files=report_stamps(reports),
        groups=len(groups),
        duplicate_files=sum(len(group.members) for group in groups),
        html_pages=reports.html_pages,
        html_omitted_groups=reports.html_omitted_groups,
    )


@contextmanager
def _stage(progress: ScanProgress | None, name: str) -> Iterator[None]:
    with _logged_stage(name):
        if progress is not None:
            progress(name, 0, 1)
        yield
        if progress is not None:
            progress(name, 1, 1)


@contextmanager
def _logged_stage(name: str) -> Iterator[None]:
    """Marks a stage's start and end in the debug log (``STAGE_STARTS``, ``STAGE_ENDS``): a
    person reading a slow scan's log sees where it was, and bench/scan_cost.py what each
    stage's CPU went to. A stage that fails has a start and no end."""
    log.debug(STAGE_STARTS, name)
    yield
    log.debug(STAGE_ENDS, name)
