"""``duplicates.html``: the groups as an interactive graph that opens without a network.

Each picture is a node showing its thumbnail (an inline JPEG ``data:`` URI) and its file
name; hovering shows the full path, size, dimensions and format. Each matching pair is
an edge coloured by score exactly as the original tool did (1.0 green ``#00FF00``, 0.8
yellow ``#FFFF00``, 0.6 red ``#FF0000``, linear in between, red below 0.6), its score on
hover. The suggested file to keep has a blue frame. ``duplicates-N.html#group-17``
selects and zooms to that group (``group_nodes``; the review page links there). pyvis
builds the graph (nodes, edges, options); the page around it is our own template, see
``html_template`` for why and for how untrusted file names are kept inert.

Large results (the choice made here): **split into pages, then cap**.

- A page holds at most ``report.html_max_nodes`` pictures. Whole groups are packed onto
  pages in ``duplicates.json`` order: page 1 is ``duplicates.html``, the next ones
  ``duplicates-2.html``, ``duplicates-3.html``, ... and every page links to the others.
  A single group larger than a page gets a page of its own showing its anchor and the
  first members by path, with a notice saying how many are not shown.
- At most ``MAX_PAGES`` pages are written. Groups past them are left out of the HTML
  with a notice on every page saying how many groups and pictures are missing and that
  ``duplicates.json`` / ``duplicates.details.json`` list everything. Pages left over from
  an earlier, larger result are removed.
- Within a big group not every pair becomes an edge: at most ``EDGES_PER_NODE`` edges
  per picture, the anchor's first (every member matches the anchor), then the strongest.
- The layout is computed here, deterministically: each group as a circle (or rings
  around its anchor), groups packed in rows in ``duplicates.json`` order. Pages up to
  ``PHYSICS_MAX_NODES`` pictures then let vis-network's physics settle from there, as
  the original did; bigger pages have physics off, so they draw at once and stay still.

The same groups give the same bytes (ids are positions, no random seeds; only the
"generated" time differs), and a page whose content has not changed is not rebuilt:
each page carries a fingerprint of everything it shows except that time, and the
thumbnails are only made when the fingerprint differs, and then only those of contents
not already in the thumbnail cache (``thumbnail_cache``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import jinja2
from pyvis.edge import Edge
from pyvis.network import Network
from pyvis.node import Node

from dupe_scanner.display import visible
from dupe_scanner.groups import DuplicateGroup, FileEntry, FilePair
from dupe_scanner.reports import html_template
from dupe_scanner.reports.details_report import iso_time, round_score
from dupe_scanner.reports.json_report import group_id
from dupe_scanner.reports.thumbnail_cache import ThumbnailCache
from dupe_scanner.reports.thumbnails import placeholder_data_uri, thumbnail_data_uris

FILE_NAME = "duplicates.html"
PAGE_FILE = re.compile(r"^duplicates(?:-([1-9][0-9]*))?\.html$")

RENDER_VERSION = "2"  # bump when the page changes in a way the fingerprint cannot see (2: #group-N)
MAX_PAGES = 50
PHYSICS_MAX_NODES = 150
EDGES_PER_NODE = 4
SPACING = 110  # between neighbouring pictures, in vis-network units
NODE_SIZE = 30
LABEL_MAX_CHARS = 32
KEEP_BORDER = "#1565C0"
FINGERPRINT_META = re.compile(rb'<meta name="dupe-scanner-content" content="([0-9a-f]{64})">')

# The original's colour stops: score -> RRGGBB.
COLOR_STOPS = {1.0: "00FF00", 0.8: "FFFF00", 0.6: "FF0000"}


def page_file_name(number: int) -> str:
    """``duplicates.html`` for page 1, ``duplicates-N.html`` after it."""
    return FILE_NAME if number == 1 else f"duplicates-{number}.html"


def edge_color(score: float) -> str:
    """The original tool's edge colour for ``score``, as ``#RRGGBB``.

    Linear between the stops, with the original's integer truncation; a score below the
    lowest stop (possible with a threshold under 0.6) is red, above 1.0 green.
    """
    score = min(max(float(score), min(COLOR_STOPS)), max(COLOR_STOPS))
    lower = max(stop for stop in COLOR_STOPS if stop <= score)
    upper = min(stop for stop in COLOR_STOPS if stop >= score)
    if lower == upper:
        return "#" + COLOR_STOPS[lower]
    low = tuple(int(COLOR_STOPS[lower][i : i + 2], 16) for i in (0, 2, 4))
    high = tuple(int(COLOR_STOPS[upper][i : i + 2], 16) for i in (0, 2, 4))
    ratio = (score - lower) / (upper - lower)
    return "#" + "".join(f"{int(lc + ratio * (hc - lc)):02X}" for lc, hc in zip(low, high))


# --- planning: which groups, members and pairs go on which page ----------------------


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


# --- layout: deterministic positions ------------------------------------------------


def group_offsets(count: int) -> tuple[list[tuple[float, float]], float]:
    """Positions around (0, 0) for ``count`` pictures, the first one the anchor; and the radius.

    Up to seven pictures sit on one circle; more put the anchor in the middle and the
    others on rings, each ring as full as its circumference allows.
    """
    if count <= 0:
        return [], 0.0
    if count == 1:
        return [(0.0, 0.0)], 0.0
    if count <= 7:
        radius = SPACING / (2 * math.sin(math.pi / count))
        return [_on_circle(radius, i, count) for i in range(count)], radius
    offsets = [(0.0, 0.0)]
    left = count - 1
    ring = 0
    radius = 0.0
    while left:
        ring += 1
        radius = ring * SPACING
        on_ring = min(left, int(2 * math.pi * ring))
        offsets.extend(_on_circle(radius, i, on_ring) for i in range(on_ring))
        left -= on_ring
    return offsets, radius


def _on_circle(radius: float, i: int, count: int) -> tuple[float, float]:
    angle = -math.pi / 2 + 2 * math.pi * i / count
    return radius * math.cos(angle), radius * math.sin(angle)


def layout_page(groups: Sequence[PlacedGroup]) -> list[list[tuple[int, int]]]:
    """Integer positions for every shown member of every group, groups packed in rows."""
    shapes = [group_offsets(len(placed.members)) for placed in groups]
    diameters = [2 * radius + SPACING for _, radius in shapes]
    area = sum(d * d for d in diameters)
    row_limit = max([math.sqrt(area * 1.6)] + diameters) if diameters else 0.0
    positions: list[list[tuple[int, int]]] = []
    x = y = row_height = 0.0
    for (offsets, _radius), diameter in zip(shapes, diameters):
        if x and x + diameter > row_limit:
            x, y, row_height = 0.0, y + row_height, 0.0
        cx, cy = x + diameter / 2, y + diameter / 2
        positions.append([(round(cx + dx), round(cy + dy)) for dx, dy in offsets])
        x += diameter
        row_height = max(row_height, diameter)
    return positions


# --- the graph, built with pyvis -----------------------------------------------------


class ReportNetwork(Network):
    """pyvis's Network with constant-time adds (its own scan every node and edge per add)."""

    def __init__(self) -> None:
        super().__init__(height="100%", width="100%", cdn_resources="in_line")
        self._edge_keys: set[tuple[Any, Any]] = set()

    def add_node(self, n_id, label=None, shape="image", color=None, **options):  # noqa: D102 - pyvis API
        if not isinstance(n_id, int):
            raise TypeError("report node ids are integers, never file names")
        if n_id in self.node_map:
            return
        if color is not None:
            options["color"] = color
        node = Node(n_id, shape, label=label if label is not None else str(n_id), **options)
        self.nodes.append(node.options)
        self.node_ids.append(n_id)
        self.node_map[n_id] = node.options

    def add_edge(self, source, to, **options):  # noqa: D102 - pyvis API
        if source not in self.node_map or to not in self.node_map:
            raise KeyError(f"edge between unknown nodes {source!r} and {to!r}")
        key = (min(source, to), max(source, to))
        if key in self._edge_keys:
            return
        self._edge_keys.add(key)
        self.edges.append(Edge(source, to, self.directed, **options).options)


def group_nodes(page: PagePlan) -> dict[str, list[int]]:
    """Each group's node ids, by group id: ``duplicates-2.html#group-17`` shows that group.

    Ids are given in ``build_network``'s order: groups in page order, members as placed.
    """
    nodes: dict[str, list[int]] = {}
    next_id = 0
    for placed in page.groups:
        nodes[placed.id] = list(range(next_id, next_id + len(placed.members)))
        next_id += len(placed.members)
    return nodes


def build_network(page: PagePlan, thumbnail_size: int, image: Callable[[FileEntry], str]) -> ReportNetwork:
    """The page's graph: integer node ids, tooltips as lists of plain-text lines."""
    network = ReportNetwork()
    positions = layout_page(page.groups)
    next_id = 0
    for placed, placed_positions in zip(page.groups, positions):
        keep = placed.group.suggested_keep
        ids: dict[str, int] = {}
        for member, (x, y) in zip(placed.members, placed_positions):
            ids[member.path] = next_id
            is_keep = member.path == keep.path
            network.add_node(
                next_id,
                label=_label(member.path),
                shape="image",
                image=image(member),
                title=_node_tooltip(member, placed, keep.reason if is_keep else None),
                x=x,
                y=y,
                **(_KEEP_STYLE if is_keep else {}),
            )
            next_id += 1
        for pair in placed.pairs:
            color = edge_color(pair.score)
            network.add_edge(
                ids[pair.first],
                ids[pair.second],
                color={"color": color, "highlight": color, "hover": color},
                width=round(pair.score * 10, 2),
                title=[f"{round_score(pair.score):.2f}", f"{pair.kind} duplicate"],
            )
    network.options = _options(page.node_count, thumbnail_size)
    return network


_KEEP_STYLE = {
    "borderWidth": 4,
    "borderWidthSelected": 6,
    "color": {"border": KEEP_BORDER, "background": "#FFFFFF", "highlight": {"border": KEEP_BORDER, "background": "#FFFFFF"}},
}


def _options(node_count: int, thumbnail_size: int) -> dict[str, Any]:
    physics = node_count <= PHYSICS_MAX_NODES
    return {
        "nodes": {
            "shape": "image",
            "size": NODE_SIZE,
            "borderWidth": 1,
            "borderWidthSelected": 3,
            "brokenImage": placeholder_data_uri(thumbnail_size),
            "color": {"border": "#9E9E9E", "background": "#FFFFFF", "highlight": {"border": "#000000", "background": "#FFFFFF"}},
            "font": {"size": 10, "face": "sans-serif"},
            "shapeProperties": {"useBorderWithImage": True, "interpolation": True},
        },
        "edges": {"smooth": False, "selectionWidth": 2, "hoverWidth": 1.5},
        "interaction": {
            "hover": True,
            "multiselect": False,
            "tooltipDelay": 75,
            "hideEdgesOnDrag": not physics,
            "hideEdgesOnZoom": not physics,
        },
        "manipulation": {"enabled": False},
        "layout": {"randomSeed": 1, "improvedLayout": False},
        "physics": {
            "enabled": physics,
            "barnesHut": {"springLength": 150},
            "minVelocity": 0.75,
            "stabilization": {"enabled": physics, "iterations": 300, "fit": True},
        },
    }


def _label(path: str) -> str:
    name = visible(PurePosixPath(path).name or path)
    return name if len(name) <= LABEL_MAX_CHARS else name[: LABEL_MAX_CHARS - 1] + "\u2026"


def _node_tooltip(member: FileEntry, placed: PlacedGroup, keep_reason: str | None) -> list[str]:
    lines = [
        visible(member.path),  # a bidirectional control would make it read as another name
        f"{placed.id} \u00b7 {member.width} \u00d7 {member.height} \u00b7 {member.format} \u00b7 {_human_size(member.size)}",
        f"modified {_display_time(iso_time(datetime.fromtimestamp(member.mtime, tz=timezone.utc)))}",
    ]
    if keep_reason:
        lines.append(f"suggested to keep: {keep_reason}")
    if member.path == placed.group.anchor:
        lines.append("anchor: every picture in the group matches it")
    return lines


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # pragma: no cover


def _display_time(iso: str) -> str:
    """``2024-05-01T12:00:00+00:00`` -> ``2024-05-01 12:00 UTC``."""
    return iso[:10] + " " + iso[11:16] + " UTC"


# --- the page -------------------------------------------------------------------------


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
) -> tuple[HtmlPlan, list[RenderedPage]]:
    """The plan, and every page of the HTML report with its fingerprint and a way to render it.

    ``thumbnails``: where the pages rendered find the thumbnails of earlier reports.
    """
    plan = plan_pages(groups, max_nodes, max_pages)
    pages = []
    for page in plan.pages:
        header = _header(plan, page, threshold)
        thumbnail_keys = [
            [member.path, member.content_hash, member.size, member.mtime]
            for placed in page.groups
            for member in placed.members
        ]
        skeleton = build_network(page, thumbnail_size, image=lambda member: "")
        fingerprint = _fingerprint(
            {
                "header": header,
                "network": _network_data(skeleton),
                "thumbnails": thumbnail_keys,
                "thumbnail_size": thumbnail_size,
            }
        )
        pages.append(
            RenderedPage(
                number=page.number,
                file_name=page_file_name(page.number),
                fingerprint=fingerprint,
                render=_renderer(page, header, fingerprint, thumbnail_size, generated_at, thumbnails),
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
    thumbnails: ThumbnailCache | None,
) -> Callable[[], bytes]:
    def render() -> bytes:
        members = [member for placed in page.groups for member in placed.members]
        uris = dict(zip((m.path for m in members), thumbnail_data_uris(members, thumbnail_size, thumbnails)))
        network = build_network(page, thumbnail_size, image=lambda member: uris[member.path])
        return render_page(header, {**_network_data(network), "groups": group_nodes(page)}, fingerprint, generated_at)

    return render


def render_page(header: dict[str, Any], data: dict[str, Any], fingerprint: str, generated_at: datetime) -> bytes:
    assets = _assets()
    data_json = script_json(data)
    html = _environment().from_string(html_template.PAGE).render(
        csp=assets["csp"],
        fingerprint=fingerprint,
        generated_at=_display_time(iso_time(generated_at)),
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


def _network_data(network: ReportNetwork) -> dict[str, Any]:
    nodes, edges, _heading, _height, _width, options = network.get_network_data()
    return {"nodes": nodes, "edges": edges, "options": json.loads(options)}


def _header(plan: HtmlPlan, page: PagePlan, threshold: float) -> dict[str, Any]:
    totals = plan.totals
    summary = (
        f"{totals['groups']} duplicate groups with {totals['files']} pictures and {totals['pairs']} matching pairs "
        f"at threshold {threshold:g} (0.9 and above: exact duplicates)."
    )
    notices = []
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


def _fingerprint(content: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(f"render {RENDER_VERSION}\n".encode())
    digest.update(_assets()["digest"].encode())
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
