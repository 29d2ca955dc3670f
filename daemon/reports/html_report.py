"""``duplicates.html``: the groups as an interactive graph that opens without a network.

Each picture is a node showing its thumbnail, each matching pair an edge coloured by
score as the original tool did; ``duplicates-N.html#group-17`` selects and zooms to that
group (the review page links there). The report is made in three steps, a module each:

- ``html_pages``: which groups, members and pairs go on which page. Large results are
  split into pages of at most ``report.html_max_nodes`` pictures, then capped at
  ``MAX_PAGES`` pages, with notices saying what is not shown.
- ``html_graph``: each page's graph: deterministic positions, and the nodes, edges and
  options pyvis builds.
- this module, the rendering: the page around the graph is our own template (see
  ``html_template`` for why, and for how untrusted file names are kept inert), with its
  header, the inlined vis-network, and a fingerprint of its content.

The same groups give the same bytes (ids are positions, no random seeds; only the
"generated" time differs), and a page whose content has not changed is not rebuilt:
each page carries a fingerprint of everything it shows except that time, and the
thumbnails are only made when the fingerprint differs, and then only those of contents
not already in the thumbnail cache (``thumbnail_cache``).

The report's limits, ``MAX_PAGES`` and ``PHYSICS_MAX_NODES``, are read here (where
callers and tests set them) and handed to the parts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from dupe_scanner.code_version import code_digest
from dupe_scanner.groups import DuplicateGroup
from dupe_scanner.reports import html_template
from dupe_scanner.reports.details_report import iso_time
from dupe_scanner.reports.html_graph import (
    PHYSICS_MAX_NODES,
    SPACING,
    build_network,
    display_time,
    edge_color,
    group_nodes,
    group_offsets,
    network_data,
)
from dupe_scanner.reports.html_pages import (
    EDGES_PER_NODE,
    FILE_NAME,
    MAX_PAGES,
    PAGE_FILE,
    HtmlPlan,
    PagePlan,
    page_file_name,
    plan_pages,
)
from dupe_scanner.reports.partial import PartialComparison
from dupe_scanner.reports.thumbnail_cache import ThumbnailCache
from dupe_scanner.reports.thumbnails import UnreadablePictures, thumbnail_data_uris

# The rendering's names, and those of html_pages and html_graph its callers use from here.
__all__ = [
    "EDGES_PER_NODE",
    "FILE_NAME",
    "FINGERPRINT_META",
    "MAX_PAGES",
    "PAGE_FILE",
    "PHYSICS_MAX_NODES",
    "RENDER_VERSION",
    "SPACING",
    "HtmlPlan",
    "RenderedPage",
    "edge_color",
    "existing_fingerprint",
    "group_offsets",
    "page_file_name",
    "plan_pages",
    "prepare_pages",
    "render_page",
    "script_json",
]

RENDER_VERSION = "2"  # bump when the page changes in a way the fingerprint cannot see (2: #group-N)
FINGERPRINT_META = re.compile(rb'<meta name="dupe-scanner-content" content="([0-9a-f]{64})">')


@dataclass(frozen=True)
class RenderedPage:
    number: int
    file_name: str
    fingerprint: str
    render: Callable[[], bytes]  # decodes the thumbnails; call only when the page changed


def prepare_pages(
    groups: Sequence[DuplicateGroup],
    threshold: float,
    max_nodes: int,
    thumbnail_size: int,
    generated_at: datetime,
    max_pages: int | None = None,
    thumbnails: ThumbnailCache | None = None,
    partial: PartialComparison | None = None,
    unreadable: UnreadablePictures | None = None,
) -> tuple[HtmlPlan, list[RenderedPage]]:
    """The plan, and every page of the HTML report with its fingerprint and a way to render it.

    ``thumbnails``: where the pages rendered find the thumbnails of earlier reports.
    ``partial``: the scan is still comparing; each page says how far it is.
    ``unreadable``: the report run's account of pictures that could not be read.
    """
    plan = plan_pages(groups, max_nodes, MAX_PAGES if max_pages is None else max_pages)
    pages = []
    for page in plan.pages:
        header = _header(plan, page, threshold, partial)
        fingerprint = _fingerprint({"header": header, "graph": _graph_inputs(page), "thumbnail_size": thumbnail_size})
        pages.append(
            RenderedPage(
                number=page.number,
                file_name=page_file_name(page.number),
                fingerprint=fingerprint,
                render=_renderer(page, header, fingerprint, thumbnail_size, generated_at, thumbnails, unreadable),
            )
        )
    return plan, pages


def existing_fingerprint(path: Path) -> str | None:
    """The fingerprint in an already written page, or None if there is none to read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    match = FINGERPRINT_META.search(head)
    return match.group(1).decode("ascii") if match else None


def _renderer(
    page: PagePlan, header: dict[str, Any], fingerprint: str, thumbnail_size: int, generated_at: datetime,
    thumbnails: ThumbnailCache | None, unreadable: UnreadablePictures | None,
) -> Callable[[], bytes]:
    def render() -> bytes:
        members = [member for placed in page.groups for member in placed.members]
        images = thumbnail_data_uris(members, thumbnail_size, thumbnails, unreadable=unreadable)
        uris = dict(zip((m.path for m in members), images, strict=True))
        network = build_network(
            page, thumbnail_size, image=lambda member: uris[member.path], physics_max_nodes=PHYSICS_MAX_NODES
        )
        return render_page(header, {**network_data(network), "groups": group_nodes(page)}, fingerprint, generated_at)

    return render


def render_page(header: dict[str, Any], data: dict[str, Any], fingerprint: str, generated_at: datetime) -> bytes:
    assets = _assets()
    data_json = script_json(data)
    html = _environment().from_string(html_template.PAGE).render(
        csp=assets["csp"],
        fingerprint=fingerprint,
        generated_at=display_time(iso_time(generated_at)),
        vis_css=assets["vis_css"],
        page_css=html_template.STYLE,
        vis_js=assets["vis_js"],
        page_js=html_template.SCRIPT,
        data_json=data_json,
        **header,
    )
    return html.encode("utf-8")


def script_json(value: Any) -> str:
    """JSON that is inert inside a ``<script>`` element: no ``<``, ``>`` or ``&`` at all.

    ``ensure_ascii`` also escapes U+2028/U+2029 and lone surrogates (paths that are not
    valid UTF-8), so the page itself is always valid UTF-8.
    """
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _header(plan: HtmlPlan, page: PagePlan, threshold: float, partial: PartialComparison | None = None) -> dict[str, Any]:
    totals = plan.totals
    summary = (
        f"{totals['groups']} duplicate groups with {totals['files']} pictures and {totals['pairs']} matching pairs "
        f"at threshold {threshold:g} (0.9 and above: exact duplicates)."
    )
    notices = [] if partial is None else [partial.notice()]
    if len(plan.pages) > 1:
        shown = [placed.id for placed in page.groups]
        if shown:
            span = shown[0] if len(shown) == 1 else f"{shown[0]} to {shown[-1]}"
            notices.append(
                f"Page {page.number} of {len(plan.pages)}: {span}, {page.node_count} pictures "
                f"(at most report.html_max_nodes per page)."
            )
    if plan.omitted_groups:
        notices.append(
            f"{plan.omitted_groups} more groups with {plan.omitted_files} pictures are not shown in these "
            f"{len(plan.pages)} pages, to keep the report usable. duplicates.json and "
            f"duplicates.details.json list every group."
        )
    thinned = []
    for placed in page.groups:
        total = len(placed.group.members)
        if len(placed.members) < total:
            notices.append(
                f"{placed.id} has {total} pictures; {len(placed.members)} are shown (more than one page holds). "
                f"duplicates.json lists all of them."
            )
        elif len(placed.pairs) < len(placed.group.pairs):
            thinned.append(placed)
    if len(thinned) == 1:
        placed = thinned[0]
        notices.append(
            f"{placed.id}: {len(placed.pairs)} of its {len(placed.group.pairs)} matching pairs are drawn (the "
            f"anchor's and the strongest); duplicates.details.json lists every pair."
        )
    elif thinned:
        names = ", ".join(placed.id for placed in thinned[:5]) + (f" and {len(thinned) - 5} more" if len(thinned) > 5 else "")
        drawn = sum(len(placed.pairs) for placed in thinned)
        scored = sum(len(placed.group.pairs) for placed in thinned)
        notices.append(
            f"In {len(thinned)} big groups ({names}) {drawn} of their {scored} matching pairs are drawn (each "
            f"anchor's and the strongest); duplicates.details.json lists every pair."
        )
    if not totals["groups"]:
        notices.append("No duplicates found.")
    return {
        "title": "Duplicate images",
        "summary": summary,
        "help": "Hover over a picture for its path, over a line for the similarity score; scroll to zoom.",
        "legend": [
            {"color": "#00FF00", "text": "1.0: exact duplicates, no or minor changes"},
            {"color": "#FFFF00", "text": "0.8: near-duplicates"},
            {"color": "#FF0000", "text": "0.6: near-duplicates with major changes"},
        ],
        "notices": notices,
        "pages": [
            {"number": number, "file": page_file_name(number), "current": number == page.number}
            for number in range(1, len(plan.pages) + 1)
        ],
    }


def _graph_inputs(page: PagePlan) -> list[Any]:
    """Everything ``build_network`` and the thumbnails read of a page's groups.

    The fingerprint is made of these and the code that builds the graph (``code_digest``)
    rather than of the graph itself, which costs as much to build as the page (3 s of the
    20 pages at a million files) and would be built for every page a scan leaves as it was.
    """
    return [
        [
            placed.id,
            placed.group.anchor,
            [placed.group.suggested_keep.path, placed.group.suggested_keep.reason],
            [[m.path, m.content_hash, m.size, m.mtime, m.width, m.height, m.format] for m in placed.members],
            [[pair.first, pair.second, pair.score] for pair in placed.pairs],
        ]
        for placed in page.groups
    ]


def _fingerprint(content: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(f"render {RENDER_VERSION}\n".encode())
    digest.update(_assets()["digest"].encode())
    digest.update(code_digest().encode())
    digest.update(f"physics up to {PHYSICS_MAX_NODES} nodes\n".encode())
    digest.update(json.dumps(content, sort_keys=True, ensure_ascii=True, allow_nan=False).encode("ascii"))
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


@lru_cache(maxsize=1)
def _assets() -> dict[str, str]:
    """vis-network 9.1.2 as shipped inside pyvis, the policy allowing exactly our scripts."""
    library = resources.files("pyvis") / "templates" / "lib" / "vis-9.1.2"
    vis_js = (library / "vis-network.min.js").read_text(encoding="utf-8")
    vis_css = (library / "vis-network.css").read_text(encoding="utf-8")
    for name, text, closing in (("vis-network.min.js", vis_js, "</script"), ("vis-network.css", vis_css, "</style")):
        lowered = text.lower()
        if closing in lowered or "<!--" in lowered:
            raise RuntimeError(f"pyvis's {name} cannot be inlined safely: it contains {closing!r} or '<!--'")
    script_hashes = " ".join(f"'sha256-{_sha256_b64(text)}'" for text in (vis_js, html_template.SCRIPT))
    csp = (
        f"default-src 'none'; script-src {script_hashes}; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    digest = hashlib.sha256(
        "\0".join((vis_js, vis_css, html_template.PAGE, html_template.STYLE, html_template.SCRIPT)).encode("utf-8")
    ).hexdigest()
    return {"vis_js": vis_js, "vis_css": vis_css, "csp": csp, "digest": digest}


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
