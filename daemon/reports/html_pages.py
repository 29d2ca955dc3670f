"""The graph report's pages: which groups, members and pairs go on which page.

Large results (the choice made here): **split into pages, then cap**.

- A page holds at most ``report.html_max_nodes`` pictures. Whole groups are packed onto
  pages in ``duplicates.json`` order: page 1 is ``duplicates.html``, the next ones
  ``duplicates-2.html``, ``duplicates-3.html``, ... and every page links to the others.
  A single group larger than a page gets a page of its own showing its anchor and the
  first members by path, with a notice saying how many are not shown.
- At most ``MAX_PAGES`` pages are written. Groups past them are left out of the HTML
  with a notice on every page saying how many groups and pictures are missing and that
  ``duplicates.json`` / ``duplicates.details.json`` list everything. Pages left over from
  an earlier, larger result are removed (``reports``).
- Within a big group not every pair becomes an edge: at most ``EDGES_PER_NODE`` edges
  per picture, the anchor's first (every member matches the anchor), then the strongest.

A plan is pure data: how each page is drawn is ``html_graph``'s job, how it is written
``html_report``'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dupe_scanner.groups import DuplicateGroup, FileEntry, FilePair
from dupe_scanner.reports.json_report import group_id

FILE_NAME = "duplicates.html"
PAGE_FILE = re.compile(r"^duplicates(?:-([1-9][0-9]*))?\.html$")

MAX_PAGES = 50
EDGES_PER_NODE = 4


def page_file_name(number: int) -> str:
    """``duplicates.html`` for page 1, ``duplicates-N.html`` after it."""
    return FILE_NAME if number == 1 else f"duplicates-{number}.html"


@dataclass(frozen=True)
class PlacedGroup:
    index: int  # position in the report order; "group-{index+1}"
    group: DuplicateGroup
    members: tuple[FileEntry, ...]  # the ones shown: anchor first, then by path
    pairs: tuple[FilePair, ...]  # the ones drawn

    @property
    def id(self) -> str:
        return group_id(self.index)


@dataclass(frozen=True)
class PagePlan:
    number: int
    groups: tuple[PlacedGroup, ...]

    @property
    def node_count(self) -> int:
        return sum(len(placed.members) for placed in self.groups)


@dataclass(frozen=True)
class HtmlPlan:
    pages: tuple[PagePlan, ...]
    omitted_groups: int = 0
    omitted_files: int = 0
    totals: dict[str, int] = field(default_factory=dict)


def plan_pages(groups: Sequence[DuplicateGroup], max_nodes: int, max_pages: int | None = None) -> HtmlPlan:
    """Pack whole groups onto pages of at most ``max_nodes`` pictures, in order."""
    max_nodes = max(2, max_nodes)
    max_pages = MAX_PAGES if max_pages is None else max(1, max_pages)
    pages: list[list[PlacedGroup]] = []
    current: list[PlacedGroup] = []
    current_nodes = 0
    omitted_groups = omitted_files = 0
    for index, group in enumerate(groups):
        shown = min(len(group.members), max_nodes)
        if current and current_nodes + shown > max_nodes:
            pages.append(current)
            current, current_nodes = [], 0
        if len(pages) >= max_pages:
            omitted_groups += 1
            omitted_files += len(group.members)
            continue
        current.append(_place(index, group, max_nodes))
        current_nodes += shown
    if current and len(pages) < max_pages:
        pages.append(current)
    if not pages:
        pages.append([])
    totals = {
        "groups": len(groups),
        "files": sum(len(group.members) for group in groups),
        "pairs": sum(len(group.pairs) for group in groups),
    }
    return HtmlPlan(
        pages=tuple(PagePlan(number, tuple(page)) for number, page in enumerate(pages, start=1)),
        omitted_groups=omitted_groups,
        omitted_files=omitted_files,
        totals=totals,
    )


def _place(index: int, group: DuplicateGroup, max_nodes: int) -> PlacedGroup:
    by_path = sorted(group.members, key=lambda member: member.path)
    anchor = [member for member in by_path if member.path == group.anchor]
    others = [member for member in by_path if member.path != group.anchor]
    members = tuple((anchor + others)[:max_nodes])
    shown = {member.path for member in members}
    candidates = sorted(
        (pair for pair in group.pairs if pair.first in shown and pair.second in shown and pair.first != pair.second),
        key=lambda pair: (pair.first, pair.second),
    )
    budget = max(EDGES_PER_NODE * len(members), len(members) - 1)
    if len(candidates) > budget:
        from_anchor = [pair for pair in candidates if group.anchor in (pair.first, pair.second)]
        rest = sorted(
            (pair for pair in candidates if group.anchor not in (pair.first, pair.second)),
            key=lambda pair: (-pair.score, pair.first, pair.second),
        )
        candidates = sorted((from_anchor + rest)[:budget], key=lambda pair: (pair.first, pair.second))
    return PlacedGroup(index=index, group=group, members=members, pairs=tuple(candidates))
