"""``review.html``: every group as a row of thumbnails with its facts, for people to decide on.

The graph pages explain why pictures belong together but stop at ``MAX_PAGES`` pages;
this page lists every group, sorts and filters them in the browser, and turns the
reader's "not duplicates" and "keep this one" into a decisions file
(``dupe_scanner.decision_file``) that ``dupe-scanner decide --import`` or the service's
``decisions/`` folder takes in. No server is involved.

The choices made here, for 100,000 groups (about 300,000 pictures):

- **One page, data as a compact JSON blob** (``review_data``), rendered by a small
  inline script a chunk of groups at a time. Sorting and filtering over every group then
  work in the browser, which paged HTML files could not do.
- **Thumbnails are files**, ``thumbnails/v1-224/ab/<content hash>.jpg`` beside the page,
  not ``data:`` URIs: inline they would make the page about 3 GB at that size, parsed
  before anything shows. As files the browser loads only those scrolled into view. They
  are keyed by content, so a new report writes only new pictures' thumbnails; those no
  group shows any more are pruned (``thumbnail_cache``, the same rules as the graph's
  cache). Readable by others (0644) like the reports themselves, since whoever may open
  the page must see them.
- Thumbnails are bigger than the graph's (224 pixels against 160 by default): here they
  are for judging which copy to keep.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import jinja2

from dupe_scanner.groups import DuplicateGroup, FileEntry
from dupe_scanner.reports import review_template
from dupe_scanner.reports.details_report import iso_time
from dupe_scanner.reports.html_pages import HtmlPlan, page_file_name
from dupe_scanner.reports.html_report import script_json
from dupe_scanner.reports.partial import PartialComparison
from dupe_scanner.reports.review_data import review_document
from dupe_scanner.reports.thumbnail_cache import ThumbnailCache
from dupe_scanner.reports.thumbnails import UnreadablePictures, thumbnail_jpegs

FILE_NAME = "review.html"
THUMBNAIL_FOLDER = "thumbnails"
THUMBNAIL_SIZE = 224
THUMBNAIL_MODE = 0o644
DECODE_BATCH = 512  # members whose thumbnails are made at once: bounds the JPEGs held in memory
# What differs between two renderings of the same groups: the generation time, in the
# first bytes of the page, so a page that differs only there is current.
VOLATILE = re.compile(rb'<meta name="generated" content="[^"]*">')


def review_thumbnails(reports_dir: Path) -> ThumbnailCache:
    """The page's thumbnail files: ``<reports>/thumbnails``, by content."""
    return ThumbnailCache(Path(reports_dir) / THUMBNAIL_FOLDER, THUMBNAIL_SIZE, mode=THUMBNAIL_MODE)


def render_review(
    groups: Sequence[DuplicateGroup],
    plan: HtmlPlan,
    threshold: float,
    generated_at: datetime,
    watched_folders: Sequence[str],
    reports_dir: Path,
    thumbnails: ThumbnailCache,
    partial: PartialComparison | None = None,
    unreadable: UnreadablePictures | None = None,
) -> bytes:
    """The page for ``groups``; makes the thumbnails it links to that are not there yet.
    ``partial``: the scan is still comparing; the summary says how far it is.
    ``unreadable``: the report run's account of pictures that could not be read."""
    urls = _thumbnail_urls(groups, thumbnails, Path(reports_dir), unreadable)
    page_of = [-1] * len(groups)
    for page in plan.pages:
        for placed in page.groups:
            page_of[placed.index] = page.number - 1
    prefix = f"{THUMBNAIL_FOLDER}/{thumbnails.folder.name}/" if thumbnails.folder is not None else ""
    document = review_document(
        groups,
        [page_file_name(page.number) for page in plan.pages],
        page_of,
        [str(folder) for folder in watched_folders],
        prefix,
        lambda member: urls.get(member.path),
    )
    files = sum(len(group.members) for group in groups)
    summary = f"{len(groups)} duplicate groups with {files} pictures at threshold {threshold:g}."
    if partial is not None:
        summary += " " + partial.notice()
    html = _environment().from_string(review_template.PAGE).render(
        title="Duplicate images: review",
        generated_at=iso_time(generated_at).replace("T", " ")[:16] + " UTC",
        csp=_csp(),
        page_css=review_template.STYLE,
        page_js=review_template.SCRIPT,
        summary=summary,
        help=(
            "Pick the picture to keep, or mark a group (or the pictures you select in it) as not duplicates. "
            "Nothing changes until you export: save the decisions file into the reports folder's decisions/ "
            f"folder ({Path(reports_dir) / 'decisions'}), where the service imports it at its next scan, or run "
            "the command line. Choices made on this page are lost when it is reloaded."
        ),
        data_json=script_json(document),
    )
    return html.encode("utf-8")


def in_use(groups: Sequence[DuplicateGroup]) -> set[str]:
    """The contents whose thumbnails the page shows: what pruning keeps."""
    return {member.content_hash for group in groups for member in group.members if member.content_hash}


def _thumbnail_urls(
    groups: Sequence[DuplicateGroup], thumbnails: ThumbnailCache, reports_dir: Path, unreadable: UnreadablePictures | None
) -> dict[str, str]:
    members = [member for group in groups for member in group.members]
    listing = thumbnails.listing()  # 10 s of stats at 300,000 pictures, a second as one listing
    base = len(str(reports_dir)) + 1  # relative by string: pathlib's relative_to costs seconds here
    urls: dict[str, str] = {}
    for start in range(0, len(members), DECODE_BATCH):
        batch: list[FileEntry] = members[start : start + DECODE_BATCH]
        locations = thumbnails.ensure_files(batch, lambda files: thumbnail_jpegs(files, THUMBNAIL_SIZE, unreadable=unreadable), listing)
        for member, location in zip(batch, locations, strict=True):
            if location is not None:
                urls[member.path] = location[base:]
    return urls


@lru_cache(maxsize=1)
def _csp() -> str:
    """Only the page's own script; images from its folder (``'self'``; ``file:`` when opened from disk)."""
    script = base64.b64encode(hashlib.sha256(review_template.SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return (
        f"default-src 'none'; script-src 'sha256-{script}'; style-src 'unsafe-inline'; img-src 'self' file:; "
        "base-uri 'none'; form-action 'none'"
    )


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
