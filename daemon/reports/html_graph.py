"""The graph on one page of ``duplicates.html``: where each picture sits, and what pyvis builds.

Each picture is a node showing its thumbnail (an inline JPEG ``data:`` URI, handed in by
the caller) and its file name; hovering shows the full path, size, dimensions and format.
Each matching pair is an edge coloured by score exactly as the original tool did (1.0
green ``#00FF00``, 0.8 yellow ``#FFFF00``, 0.6 red ``#FF0000``, linear in between, red
below 0.6), its score on hover. The suggested file to keep has a blue frame. Node ids are
positions on the page (``group_nodes`` says which are whose, so that
``duplicates-N.html#group-17`` selects and zooms to that group); never file names.

The layout is computed here, deterministically: each group as a circle (or rings around
its anchor), groups packed in rows in ``duplicates.json`` order. Pages up to
``PHYSICS_MAX_NODES`` pictures then let vis-network's physics settle from there, as the
original did; bigger pages have physics off, so they draw at once and stay still.

pyvis builds the graph (nodes, edges, options) and nothing else: the page around it is
``html_report``'s, which pages there are ``html_pages``'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from pyvis.edge import Edge
from pyvis.network import Network
from pyvis.node import Node

from dupe_scanner.display import visible
from dupe_scanner.groups import FileEntry
from dupe_scanner.reports.details_report import iso_time, round_score
from dupe_scanner.reports.html_pages import PagePlan, PlacedGroup
from dupe_scanner.reports.thumbnails import placeholder_data_uri

PHYSICS_MAX_NODES = 150
SPACING = 110  # between neighbouring pictures, in vis-network units
NODE_SIZE = 30
LABEL_MAX_CHARS = 32
KEEP_BORDER = "#1565C0"

# The original's colour stops: score -> RRGGBB.
COLOR_STOPS = {1.0: "00FF00", 0.8: "FFFF00", 0.6: "FF0000"}


def edge_color(score: float) -> str:
    """The original tool's edge colour for ``score``, as ``#RRGGBB``.

    Linear between the stops, with the original's integer truncation; a score below the
    lowest stop (possible with a threshold under 0.6) is red, above 1.0 green.
    """
    score = min(max(float(score), _STOPS[0][0]), _STOPS[-1][0])
    for (lower, low), (upper, high) in pairwise(_STOPS):
        if score == lower:
            return "#" + COLOR_STOPS[lower]
        if score < upper:
            ratio = (score - lower) / (upper - lower)
            return "#" + "".join(f"{int(lc + ratio * (hc - lc)):02X}" for lc, hc in zip(low, high, strict=True))
    return "#" + COLOR_STOPS[_STOPS[-1][0]]


# Each stop's channels, lowest stop first: worked out once, not for every edge of every page.
_STOPS = sorted((stop, tuple(int(rgb[i : i + 2], 16) for i in (0, 2, 4))) for stop, rgb in COLOR_STOPS.items())


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
    row_limit = max([math.sqrt(area * 1.6), *diameters]) if diameters else 0.0
    positions: list[list[tuple[int, int]]] = []
    x = y = row_height = 0.0
    for (offsets, _radius), diameter in zip(shapes, diameters, strict=True):
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

    def add_node(self, n_id, label=None, shape="image", color=None, **options):  # pyvis API
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

    def add_edge(self, source, to, **options):  # pyvis API
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


def build_network(
    page: PagePlan,
    thumbnail_size: int,
    image: Callable[[FileEntry], str],
    physics_max_nodes: int = PHYSICS_MAX_NODES,
) -> ReportNetwork:
    """The page's graph: integer node ids, tooltips as lists of plain-text lines.

    ``physics_max_nodes``: the largest page vis-network's physics runs on.
    """
    network = ReportNetwork()
    positions = layout_page(page.groups)
    next_id = 0
    for placed, placed_positions in zip(page.groups, positions, strict=True):
        keep = placed.group.suggested_keep
        ids: dict[str, int] = {}
        for member, (x, y) in zip(placed.members, placed_positions, strict=True):
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
    network.options = _options(page.node_count <= physics_max_nodes, thumbnail_size)
    return network


def network_data(network: ReportNetwork) -> dict[str, Any]:
    """The graph as the page's script receives it: nodes, edges and vis-network options."""
    nodes, edges, _heading, _height, _width, options = network.get_network_data()
    return {"nodes": nodes, "edges": edges, "options": json.loads(options)}


_KEEP_STYLE = {
    "borderWidth": 4,
    "borderWidthSelected": 6,
    "color": {"border": KEEP_BORDER, "background": "#FFFFFF", "highlight": {"border": KEEP_BORDER, "background": "#FFFFFF"}},
}


def _options(physics: bool, thumbnail_size: int) -> dict[str, Any]:
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
    name = visible(path.rpartition("/")[2] or path)
    return name if len(name) <= LABEL_MAX_CHARS else name[: LABEL_MAX_CHARS - 1] + "\u2026"


def _node_tooltip(member: FileEntry, placed: PlacedGroup, keep_reason: str | None) -> list[str]:
    lines = [
        visible(member.path),  # a bidirectional control would make it read as another name
        f"{placed.id} \u00b7 {member.width} \u00d7 {member.height} \u00b7 {member.format} \u00b7 {_human_size(member.size)}",
        f"modified {display_time(iso_time(datetime.fromtimestamp(member.mtime, tz=UTC)))}",
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


def display_time(iso: str) -> str:
    """``2024-05-01T12:00:00+00:00`` -> ``2024-05-01 12:00 UTC``."""
    return iso[:10] + " " + iso[11:16] + " UTC"
