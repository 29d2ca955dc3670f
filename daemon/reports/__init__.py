"""The reports: what a scan leaves for people and scripts in the reports folder.

- ``duplicates.json``: the original tool's exact shape (see ``json_report``).
- ``duplicates.details.json``: scores, sizes, dimensions, the suggested file to keep
  with its reason, the decisions and companions of each group (see ``details_report``).
- ``duplicates.html`` (+ ``duplicates-2.html``, ... for large results): the graph
  (see ``html_report``).
- ``review.html`` and its ``thumbnails/``: every group as a row of pictures to decide on,
  sorted and filtered in the browser, exporting a decisions file (see ``review_page``).

Every file is written atomically (temporary file, fsync, rename), so a reader sees the
old report or the new one, never half of one; a file whose content has not changed
(ignoring its generation time) is left alone, so its mtime says when the result last
changed. Nothing here deletes anything but its own stale report pages, temporary files
and thumbnails no page shows any more (kept by content in a folder the caller names, so
a changed page decodes only its new pictures).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dupe_scanner.errors import FileWriteError
from dupe_scanner.fileio import atomic_write_all, remove_stale_temp_files
from dupe_scanner.groups import DuplicateGroup
from dupe_scanner.reports import details_report, html_pages, html_report, json_report, review_page
from dupe_scanner.reports.partial import PartialComparison
from dupe_scanner.reports.thumbnail_cache import ThumbnailCache, thumbnails_beside
from dupe_scanner.reports.thumbnails import UnreadablePictures
from dupe_scanner.settings import ReportSettings

__all__ = [
    "FileStamp", "PartialComparison", "ReportOutcome",
    "report_stamps", "reports_kept", "reports_present", "thumbnails_beside", "write_reports",
]

log = logging.getLogger(__name__)

HEAD_BYTES = 4096  # holds every volatile part (a generation time at the top)
COMPARE_BYTES = 1 << 20


@dataclass(frozen=True)
class ReportOutcome:
    """What ``write_reports`` did. Paths are absolute, in the order they were handled."""

    written: tuple[Path, ...]  # created or replaced because their content changed
    unchanged: tuple[Path, ...]  # already current, left as they were
    removed: tuple[Path, ...]  # stale pages of an earlier, larger result
    html_pages: int = 1
    html_omitted_groups: int = 0  # groups too many for the HTML pages (all are in the JSON)
    # thumbnails made for the pages rendered, shrunk from review.html's where it keeps one, else
    # decoded from the picture; the rest came from the cache
    thumbnails_decoded: int = 0
    thumbnails_reused: int = 0
    review_thumbnails_decoded: int = 0  # images decoded for review.html's new thumbnail files

    @property
    def changed(self) -> bool:
        """Whether any report file differs from before."""
        return bool(self.written or self.removed)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every current report file."""
        return self.written + self.unchanged


def write_reports(
    groups: Sequence[DuplicateGroup],
    reports_dir: Path,
    settings: ReportSettings,
    threshold: float,
    generated_at: datetime | None = None,
    thumbnail_cache: Path | None = None,
    watched_folders: Sequence[Path | str] = (),
    partial: PartialComparison | None = None,
) -> ReportOutcome:
    """Write (or leave, if current) every report for ``groups`` into ``reports_dir``.

    ``groups`` arrive in report order (biggest first). ``generated_at`` defaults to now
    (UTC). ``thumbnail_cache``: a folder where thumbnails are kept by content between
    runs (see ``thumbnail_cache``); None decodes every picture of a changed page.
    ``watched_folders``: the review page shows each path relative to the one holding it.
    ``partial``: written while the scan still compares; every report says how far it is.
    Raises ``FileWriteError`` if a report cannot be written (full disk, no
    permission); then no report was replaced: all keep their previous version.
    """
    reports_dir = Path(reports_dir).absolute()
    generated_at = generated_at or datetime.now(UTC)
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FileWriteError(f"{reports_dir}: the reports folder cannot be created: {error.strerror or error}") from error

    # Everything is rendered first and replaced together, so a reader (or a full disk)
    # never sees new JSON beside an old HTML page.
    to_write: list[tuple[Path, bytes]] = []
    unchanged: list[Path] = []

    def consider(path: Path, data: bytes, volatile: re.Pattern[bytes] | None = None) -> None:
        (unchanged.append(path) if _is_current(path, data, volatile) else to_write.append((path, data)))

    consider(reports_dir / json_report.FILE_NAME, json_report.render_duplicates(groups))
    consider(
        reports_dir / details_report.FILE_NAME,
        details_report.render_details(groups, threshold, generated_at, partial),
        volatile=details_report.VOLATILE,
    )
    review_thumbnails = review_page.review_thumbnails(reports_dir)
    # The review page's thumbnails are made first, so the graph pages shrink theirs from
    # them instead of decoding every picture a second time.
    thumbnails = ThumbnailCache(thumbnail_cache, settings.thumbnail_size, shrink_from=review_thumbnails)
    # One account for the graph pages and the review page: a picture neither can show is
    # counted once, and a deleted folder's thousands are one line, not one each.
    unreadable = UnreadablePictures()
    plan, pages = html_report.prepare_pages(
        groups, threshold, settings.html_max_nodes, settings.thumbnail_size, generated_at,
        thumbnails=thumbnails, partial=partial, unreadable=unreadable,
    )
    review = review_page.render_review(
        groups, plan, threshold, generated_at, [str(f) for f in watched_folders], reports_dir, review_thumbnails, partial,
        unreadable,
    )
    for page in pages:
        path = reports_dir / page.file_name
        if html_report.existing_fingerprint(path) == page.fingerprint:
            unchanged.append(path)
        else:
            to_write.append((path, page.render()))
    consider(reports_dir / review_page.FILE_NAME, review, volatile=review_page.VOLATILE)
    unreadable.log_rest()  # every thumbnail of this run is made
    atomic_write_all(to_write)
    written = [path for path, _ in to_write]
    removed = _remove_stale_pages(reports_dir, len(pages))
    for path in written + unchanged:
        remove_stale_temp_files(reports_dir, path.name)
    # Every page's pictures count, rendered now or not: an unchanged page needs its
    # thumbnails again as soon as it changes.
    thumbnails.prune(in_use=_shown_contents(plan))
    review_thumbnails.prune(in_use=review_page.in_use(groups))

    outcome = ReportOutcome(
        written=tuple(written),
        unchanged=tuple(unchanged),
        removed=tuple(removed),
        html_pages=len(pages),
        html_omitted_groups=plan.omitted_groups,
        thumbnails_decoded=thumbnails.decoded,
        thumbnails_reused=thumbnails.reused,
        review_thumbnails_decoded=review_thumbnails.decoded,
    )
    if outcome.changed:
        log.info(
            "reports: wrote %s%s",
            ", ".join(path.name for path in written) or "nothing",
            f"; removed {', '.join(path.name for path in removed)}" if removed else "",
        )
    else:
        log.debug("reports: unchanged")
    return outcome


def reports_present(reports_dir: Path) -> bool:
    """Whether every report a scan always writes is in ``reports_dir`` (a person may have
    deleted one, or the folder, to have them written again)."""
    names = (json_report.FILE_NAME, details_report.FILE_NAME, html_pages.FILE_NAME, review_page.FILE_NAME)
    return all((Path(reports_dir) / name).is_file() for name in names)


# A report file as written: its name in the reports folder, size, mtime (ns) and inode.
FileStamp = tuple[str, int, int, int]


def report_stamps(outcome: ReportOutcome) -> tuple[FileStamp, ...]:
    """Every current report file of ``outcome`` as it is on disk now."""
    stamps = []
    for path in outcome.files:
        status = path.stat()
        stamps.append((path.name, status.st_size, status.st_mtime_ns, status.st_ino))
    return tuple(stamps)


def reports_kept(reports_dir: Path, stamps: Sequence[FileStamp], page_count: int, omitted_groups: int = 0) -> ReportOutcome | None:
    """Leaving the reports as they are, as ``write_reports`` would for the same groups: None
    if a report file is missing or is not the one written then (``stamps``): replaced by hand
    or by another version, it is written again."""
    reports_dir = Path(reports_dir).absolute()
    paths = []
    for name, size, mtime_ns, inode in stamps:
        path = reports_dir / name
        try:
            status = path.stat()
        except OSError:
            return None
        if (status.st_size, status.st_mtime_ns, status.st_ino) != (size, mtime_ns, inode):
            return None
        paths.append(path)
    if not reports_present(reports_dir):
        return None
    return ReportOutcome(written=(), unchanged=tuple(paths), removed=(), html_pages=page_count, html_omitted_groups=omitted_groups)


def _is_current(path: Path, data: bytes, volatile: re.Pattern[bytes] | None) -> bool:
    """Whether ``path`` holds ``data``, but for the first match of ``volatile`` (the time).

    Read and compared a block at a time: at 100,000 groups a report is a hundred
    megabytes, and the old one need not be held beside the new.
    """
    try:
        with open(path, "rb") as old:
            if os.fstat(old.fileno()).st_size != len(data):
                return False
            view = memoryview(data)
            head = old.read(HEAD_BYTES)
            if not _same_head(head, view[: len(head)], volatile):
                return False
            for offset in range(len(head), len(data), COMPARE_BYTES):
                if old.read(COMPARE_BYTES) != view[offset : offset + COMPARE_BYTES]:
                    return False
            return not old.read(1)
    except OSError:
        return False


def _same_head(old: bytes, new: memoryview, volatile: re.Pattern[bytes] | None) -> bool:
    if old == new:
        return True
    if volatile is None:
        return False
    return volatile.sub(b"", old, count=1) == volatile.sub(b"", new.tobytes(), count=1)


def _shown_contents(plan: html_pages.HtmlPlan) -> set[str]:
    return {member.content_hash for page in plan.pages for placed in page.groups for member in placed.members}


def _remove_stale_pages(reports_dir: Path, page_count: int) -> list[Path]:
    removed = []
    for candidate in sorted(reports_dir.iterdir()):
        match = html_pages.PAGE_FILE.match(candidate.name)
        if not match or match.group(1) is None or int(match.group(1)) <= page_count:
            continue
        try:
            if candidate.is_file() and not candidate.is_symlink():
                candidate.unlink()
                removed.append(candidate)
        except OSError as error:
            log.warning("reports: cannot remove the stale page %s: %s", candidate, error)
    return removed
