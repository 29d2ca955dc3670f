"""The reports: JSON shapes and order, the HTML's safety and size limits, atomic rewrites.

Images are real files made with Pillow; file names include the hostile ones a shared
photo folder can hold. Groups are built directly (the grouping rule has its own tests):
the building blocks are in ``report_helpers``, the ``photos`` and ``groups`` fixtures, which
the page and browser tests share, in ``conftest``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import random
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from PIL import Image

from dupe_scanner import fileio
from dupe_scanner.display import visible
from dupe_scanner.errors import FileWriteError
from dupe_scanner.groups import DuplicateGroup, FilePair
from dupe_scanner.reports import PartialComparison, ReportOutcome, html_report, json_report, write_reports
from dupe_scanner.reports.details_report import render_details
from dupe_scanner.reports.json_report import render_duplicates
from dupe_scanner.reports.thumbnails import NAMED_UNREADABLE, UnreadablePictures, placeholder_data_uri, thumbnail_data_uri
from dupe_scanner.settings import ReportSettings
from tests.report_helpers import ALERT, CANARY, SETTINGS, T0, T1, entry, group, make_image

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "ul", "li",
    "span", "nav", "a", "main", "noscript", "script",
}  # fmt: skip


class PageParser(HTMLParser):
    """Every start tag with its attributes, and the text of every script element."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict | None = None
        self._text: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script, self._text = attributes, []

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._text.append(data)
        else:
            self.text.append(data)


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def page_data(path: Path) -> dict:
    parser = parse_page(path)
    [payload] = [text for attrs, text in parser.scripts if attrs.get("type") == "application/json"]
    return json.loads(payload)


# --- duplicates.json -----------------------------------------------------------------


def test_duplicates_json_has_the_original_shape_and_order(tmp_path, groups):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    raw = (tmp_path / "reports" / "duplicates.json").read_bytes()
    document = json.loads(raw.decode("utf-8"))
    assert list(document) == ["group-1", "group-2", "group-3"]
    assert all(isinstance(paths, list) and all(isinstance(p, str) for p in paths) for paths in document.values())
    assert document["group-1"] == sorted(groups[0].paths) and len(document["group-1"]) == 4
    assert document["group-2"] == sorted(groups[1].paths)
    assert document["group-3"] == sorted(groups[2].paths)
    assert raw.startswith(b'{\n    "group-1": [\n        "') and raw.endswith(b"]\n}\n")
    assert "ünïcödé 写真.jpg".encode() in raw  # readable UTF-8, not \u escapes


def test_duplicates_json_sorts_paths_and_keeps_the_group_order_given(tmp_path):
    a, b, c, d, e = (make_image(tmp_path / f"{n}.jpg") for n in "edcba")
    small = group(entry(a), [entry(b)], [0.9])
    big = group(entry(e), [entry(d), entry(c)], [0.9, 0.8])
    document = json.loads(render_duplicates([big, small]))
    assert document == {"group-1": sorted([str(c), str(d), str(e)]), "group-2": sorted([str(a), str(b)])}
    assert json.loads(render_duplicates([])) == {}


def test_a_path_that_is_not_utf8_survives_the_json(tmp_path):
    raw_name = b"caf\xe9.jpg"  # Latin-1 bytes: not valid UTF-8
    path = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), raw_name)))
    try:
        make_image(path)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    other = make_image(tmp_path / "cafe.jpg")
    data = render_duplicates([group(entry(other), [entry(path)], [0.95])])
    data.decode("utf-8")  # the file itself stays valid UTF-8
    [paths] = json.loads(data).values()
    assert os.fsencode(paths[1]).endswith(raw_name)


def test_a_report_written_a_member_at_a_time_has_the_bytes_of_one_dump():
    nested = {"a": [1, {"b": [], "c": {}}], "d": "line\nbreak \u2028 \udcff ü", "e": []}
    items = [nested, [], {}, "x", 0.6, [[1, 2], {"f": None}]]
    lazy = {"head": nested, "empty": iter([]), "items": iter(items), "tail": True}
    whole = {"head": nested, "empty": [], "items": items, "tail": True}
    expected = (json.dumps(whole, ensure_ascii=False, indent=4) + "\n").encode("utf-8", errors="backslashreplace")
    assert json_report.encode_json(lazy) == expected
    assert json_report.encode_json(iter(whole.items())) == expected
    assert json_report.encode_json({}) == b"{}\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_json_value_is_indented_as_the_standard_library_indents_it(seed):
    rng = random.Random(seed)
    characters = ["a", "ü", "写", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "\u2028", "\udcff", "/", "\U0001f600"]

    def text() -> str:
        return "".join(rng.choice(characters) for _ in range(rng.randrange(5)))

    def value(depth: int) -> object:
        kind = rng.randrange(8 if depth < 4 else 5)
        scalars = [None, True, False, 0, -(10**20), 7, 0.0, -0.0, 1e-7, 0.6, 1e300, rng.random()]
        if kind < 2:
            return text()
        if kind < 5:
            return rng.choice(scalars)
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 6:
            return tuple(value(depth + 1) for _ in range(rng.randrange(3)))
        return {text(): value(depth + 1) for _ in range(rng.randrange(4))}

    for _ in range(500):
        document = {"groups": value(0), "keys": {3: "json makes it text", None: 1}, "more": [value(1)]}
        expected = (json.dumps(document, ensure_ascii=False, indent=4) + "\n").encode("utf-8", errors="backslashreplace")
        assert json_report.encode_json(document) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": [float("-inf")]}, {"a": {1, 2}}])
def test_a_value_json_cannot_hold_fails_as_the_standard_library_fails(value):
    with pytest.raises((ValueError, TypeError)):
        json_report.encode_json({"a": value})


# --- duplicates.details.json ---------------------------------------------------------


def test_details_report_shape(tmp_path, groups, photos):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    details = json.loads((tmp_path / "reports" / "duplicates.details.json").read_text(encoding="utf-8"))
    assert list(details) == ["schema", "generated_at", "threshold", "complete", "exact_score", "counts", "note", "groups"]
    assert details["schema"] == 3
    assert details["complete"] is True
    assert details["generated_at"] == "2024-05-01T12:00:00+00:00"
    assert details["threshold"] == 0.6
    assert details["counts"] == {"groups": 3, "files": 9, "pairs": 7, "exact_pairs": 3, "near_pairs": 4}
    assert "never deletes" in details["note"]

    first = details["groups"][0]
    assert [g["id"] for g in details["groups"]] == ["group-1", "group-2", "group-3"]
    assert first["anchor"] == photos["big.jpg"].path
    assert first["suggested_keep"] == photos["big.jpg"].path  # most pixels
    assert first["keep_reason"].startswith("most pixels: ")
    assert (first["decided"], first["decisions"], first["companions"]) == (False, [], [])
    assert [m["path"] for m in first["members"]] == sorted(groups[0].paths)
    member = next(m for m in first["members"] if m["path"] == photos[CANARY].path)
    assert member == {
        "path": photos[CANARY].path,
        "size": photos[CANARY].size,
        "width": 400,
        "height": 300,
        "format": "JPEG",
        "mtime": datetime.fromtimestamp(photos[CANARY].mtime, tz=UTC).isoformat(timespec="seconds"),
        "content_hash": f"hash-{CANARY}",
        "suggested_keep": False,
        "never_remove": False,
    }
    assert sum(m["suggested_keep"] for m in first["members"]) == 1
    pairs = {(p["first"], p["second"]): (p["score"], p["kind"]) for p in first["pairs"]}
    assert pairs[tuple(sorted([photos["big.jpg"].path, photos[CANARY].path]))] == (1.0, "exact")
    assert pairs[tuple(sorted([photos["big.jpg"].path, photos["breaker"].path]))] == (0.7, "near")
    assert pairs[tuple(sorted([photos[CANARY].path, photos[ALERT].path]))] == (0.93, "exact")
    assert [(p["first"], p["second"]) for p in first["pairs"]] == sorted(pairs)


def test_reports_written_while_the_scan_still_compares_say_how_far_it_is(tmp_path, groups):
    reports = tmp_path / "reports"
    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0, partial=PartialComparison(5000, 120000))

    details = json.loads((reports / "duplicates.details.json").read_text(encoding="utf-8"))
    assert details["complete"] is False
    assert details["comparison"] == {"compared": 5000, "pictures": 120000}
    said = "still comparing: 5,000 of the 120,000 pictures are compared"
    assert said in (reports / "duplicates.html").read_text(encoding="utf-8")
    assert said in (reports / "review.html").read_text(encoding="utf-8")

    finished = write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)

    details = json.loads((reports / "duplicates.details.json").read_text(encoding="utf-8"))
    assert details["complete"] is True and "comparison" not in details
    assert said not in (reports / "duplicates.html").read_text(encoding="utf-8")
    assert said not in (reports / "review.html").read_text(encoding="utf-8")
    assert reports / "duplicates.json" in finished.unchanged  # the original shape has no room to say it


def test_suggested_keep_prefers_pixels_then_size_then_age(tmp_path):
    older = make_image(tmp_path / "older.jpg")
    newer = make_image(tmp_path / "newer.jpg")
    os.utime(older, (1_000_000, 1_000_000))
    same = group(entry(newer), [entry(older)], [1.0])
    details = json.loads(render_details([same], 0.6, T0))
    assert details["groups"][0]["suggested_keep"] == str(older)


def test_details_differ_only_in_generated_at(groups):
    first = json.loads(render_details(groups, 0.6, T0))
    second = json.loads(render_details(groups, 0.6, T1))
    assert first.pop("generated_at") != second.pop("generated_at")
    assert first == second
    assert render_details(groups, 0.6, T0) == render_details(groups, 0.6, T0)


# --- writing, rewriting, not rewriting ----------------------------------------------------


def test_write_reports_creates_every_report_and_reports_it(tmp_path, groups):
    reports = tmp_path / "reports"
    outcome = write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)
    assert isinstance(outcome, ReportOutcome)
    names = {path.name for path in outcome.written}
    assert names == {"duplicates.json", "duplicates.details.json", "duplicates.html", "review.html"}
    assert outcome.changed and outcome.unchanged == () and outcome.removed == ()
    assert outcome.html_pages == 1 and outcome.html_omitted_groups == 0
    assert sorted(p.name for p in reports.iterdir()) == sorted(names | {"thumbnails"})  # the review page's


def test_unchanged_content_is_not_rewritten_even_at_a_later_time(tmp_path, groups):
    reports = tmp_path / "reports"
    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for p in reports.iterdir() if p.is_file()}
    outcome = write_reports(groups, reports, SETTINGS, 0.6, generated_at=T1)
    assert not outcome.changed and outcome.written == ()
    assert {path.name for path in outcome.unchanged} == set(before)
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for p in reports.iterdir() if p.is_file()}
    assert after == before


def test_changed_content_is_rewritten_and_only_that(tmp_path, groups):
    reports = tmp_path / "reports"
    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)
    outcome = write_reports(groups, reports, SETTINGS, 0.7, generated_at=T1)  # threshold shows in details and html
    assert {p.name for p in outcome.written} == {"duplicates.details.json", "duplicates.html", "review.html"}
    assert {p.name for p in outcome.unchanged} == {"duplicates.json"}
    assert json.loads((reports / "duplicates.details.json").read_text())["generated_at"] == "2024-05-02T08:30:00+00:00"
    outcome = write_reports(groups[:2], reports, SETTINGS, 0.7, generated_at=T1)
    assert {p.name for p in outcome.written} == {"duplicates.json", "duplicates.details.json", "duplicates.html", "review.html"}


def test_same_input_gives_the_same_bytes(tmp_path, groups):
    write_reports(groups, tmp_path / "one", SETTINGS, 0.6, generated_at=T0)
    write_reports(groups, tmp_path / "two", SETTINGS, 0.6, generated_at=T0)
    for name in ("duplicates.json", "duplicates.details.json", "duplicates.html"):  # review.html names its folder
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_a_failed_write_keeps_the_previous_report(tmp_path, groups, monkeypatch):
    reports = tmp_path / "reports"
    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)
    before = {path.name: path.read_bytes() for path in reports.iterdir() if path.is_file()}

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", disk_full)
    with pytest.raises(FileWriteError, match="no space left"):
        write_reports(groups[:1], reports, SETTINGS, 0.6, generated_at=T1)
    assert {path.name: path.read_bytes() for path in reports.iterdir() if path.is_file()} == before  # no temp files either


def test_reports_folder_is_created(tmp_path, groups):
    write_reports(groups, tmp_path / "a" / "b" / "reports", SETTINGS, 0.6, generated_at=T0)
    assert (tmp_path / "a" / "b" / "reports" / "duplicates.json").is_file()


def test_no_duplicates_still_writes_every_report(tmp_path):
    reports = tmp_path / "reports"
    outcome = write_reports([], reports, SETTINGS, 0.6, generated_at=T0)
    assert json.loads((reports / "duplicates.json").read_text()) == {}
    assert json.loads((reports / "duplicates.details.json").read_text())["groups"] == []
    assert outcome.html_pages == 1
    parser = parse_page(reports / "duplicates.html")
    assert "No duplicates found." in "".join(parser.text)
    assert page_data(reports / "duplicates.html")["nodes"] == []


# --- duplicates.html: safe, standalone ----------------------------------------------------


def test_html_is_standalone_and_only_the_templates_own_markup(tmp_path, groups):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    page = tmp_path / "reports" / "duplicates.html"
    parser = parse_page(page)
    tags = [tag for tag, _ in parser.tags]
    assert set(tags) <= ALLOWED_TAGS, set(tags) - ALLOWED_TAGS
    for tag, attributes in parser.tags:
        assert not [name for name in attributes if name.lower().startswith("on")], (tag, attributes)
        assert "src" not in attributes, (tag, attributes)  # every script is inline
        assert tag != "link"
        if tag == "a":
            assert re.fullmatch(r"duplicates(-\d+)?\.html", attributes["href"] or "")
        if "style" in attributes:
            assert re.fullmatch(r"background: #[0-9A-F]{6}", attributes["style"] or ""), attributes
    scripts = [attrs for attrs, _ in parser.scripts]
    assert scripts == [{"type": "application/json", "id": "report-data"}, {}, {}]
    assert tags.count("script") == 3
    csp = next(a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None
    assert "default-src 'none'" in csp and "img-src data:" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    shipped = (resources.files("pyvis") / "templates/lib/vis-9.1.2/vis-network.min.js").read_text(encoding="utf-8")
    assert parser.scripts[1][1] == shipped  # vis-network 9.1.2 from pyvis, inline
    assert "new vis.Network" in parser.scripts[2][1]
    markup = page.read_text(encoding="utf-8").split("<script")[0]  # head, styles and header
    assert "http://" not in markup and "https://" not in markup


def test_hostile_names_never_appear_as_markup(tmp_path, groups, photos):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    html = (tmp_path / "reports" / "duplicates.html").read_text(encoding="utf-8")
    for raw in (CANARY, ALERT, "<img", "</script><script>", "<!--", "q\"uote's"):
        assert raw not in html, raw
    data = page_data(tmp_path / "reports" / "duplicates.html")
    titles = [node["title"][0] for node in data["nodes"]]
    assert photos[CANARY].path in titles and photos[ALERT].path in titles  # shown, as text
    assert photos["breaker"].path in titles and "</script><script>" in photos["breaker"].path
    assert visible(photos["new\nline.jpg"].path) in titles and "\\n" in visible(photos["new\nline.jpg"].path)
    assert all(isinstance(node["id"], int) for node in data["nodes"])
    assert sorted(node["id"] for node in data["nodes"]) == list(range(len(data["nodes"])))
    for edge in data["edges"]:
        assert isinstance(edge["from"], int) and isinstance(edge["to"], int)


def test_bidirectional_controls_in_a_name_are_shown_as_escapes_not_obeyed(tmp_path):
    # Shown raw, U+202E makes "invoice\u202egpj.exe.png" read as "invoicegnp.exe.jpg"... backwards.
    folder = tmp_path / "photos"
    names = ("invoice\u202egpj.exe.png", "isolate\u2067x\u2069.png")
    first, second = (entry(make_image(folder / name)) for name in names)
    write_reports([group(first, [second], [0.95])], tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    nodes = page_data(tmp_path / "reports" / "duplicates.html")["nodes"]
    drawn = [text for node in nodes for text in (node["label"], *node["title"])]  # what the page's script shows
    assert not any(control in text for text in drawn for control in ("\u202e", "\u2067", "\u2069"))
    tooltips = {node["title"][0] for node in nodes}
    assert tooltips == {f"{folder}/invoice\\u202egpj.exe.png", f"{folder}/isolate\\u2067x\\u2069.png"}
    assert {node["label"] for node in nodes} == {"invoice\\u202egpj.exe.png", "isolate\\u2067x\\u2069.png"}


def test_nodes_have_inline_thumbnails_and_hover_text(tmp_path, groups, photos):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    data = page_data(tmp_path / "reports" / "duplicates.html")
    by_path = {node["title"][0]: node for node in data["nodes"]}
    assert set(by_path) == {visible(member.path) for g in groups for member in g.members}
    for path, node in by_path.items():
        assert node["shape"] == "image"
        assert node["image"].startswith("data:image/")
        if path == photos["broken"].path:
            assert node["image"] == placeholder_data_uri(SETTINGS.thumbnail_size)
            continue
        assert node["image"].startswith("data:image/jpeg;base64,")
        thumbnail = Image.open(io.BytesIO(base64.b64decode(node["image"].split(",", 1)[1])))
        assert thumbnail.format == "JPEG" and max(thumbnail.size) == SETTINGS.thumbnail_size
    big = by_path[photos["big.jpg"].path]
    assert big["label"] == "big.jpg"
    assert big["borderWidth"] == 4  # the suggested file to keep stands out
    assert any("suggested to keep" in line for line in big["title"])
    assert any("800 \u00d7 600" in line and "group-1" in line for line in big["title"])


def test_edges_carry_the_originals_colours_and_the_score(tmp_path, groups, photos):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    data = page_data(tmp_path / "reports" / "duplicates.html")
    ids = {node["title"][0]: node["id"] for node in data["nodes"]}
    edges = {frozenset((edge["from"], edge["to"])): edge for edge in data["edges"]}
    assert len(edges) == 7
    exact = edges[frozenset((ids[photos["big.jpg"].path], ids[photos[CANARY].path]))]
    assert exact["color"]["color"] == "#00FF00" and exact["title"] == ["1.00", "exact duplicate"]
    near = edges[frozenset((ids[photos["big.jpg"].path], ids[photos["breaker"].path]))]
    assert near["color"]["color"] == "#FF7F00" and near["title"][0] == "0.70"
    assert edges[frozenset((ids[photos["plain.jpg"].path], ids[visible(photos["new\nline.jpg"].path)]))]["title"][0] == "0.62"


@pytest.mark.parametrize(
    "score, color",
    [(1.0, "#00FF00"), (0.9, "#7FFF00"), (0.8, "#FFFF00"), (0.7, "#FF7F00"), (0.6, "#FF0000"),
     (0.55, "#FF0000"), (0.0, "#FF0000"), (1.2, "#00FF00"), (0.95, "#3FFF00")],
)  # fmt: skip
def test_edge_colour_matches_the_original(score, color):
    assert html_report.edge_color(score) == color


def test_thumbnails_are_upright_and_unreadable_files_get_a_placeholder(tmp_path):
    rotated = make_image(tmp_path / "rotated.jpg", size=(400, 200), orientation=6)  # shown as portrait
    uri = thumbnail_data_uri(rotated, 100)
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.size == (50, 100)
    small = make_image(tmp_path / "small.png", size=(30, 20))
    assert Image.open(io.BytesIO(base64.b64decode(thumbnail_data_uri(small, 100).split(",", 1)[1]))).size == (30, 20)
    assert thumbnail_data_uri(tmp_path / "missing.jpg", 100) == placeholder_data_uri(100)
    (tmp_path / "text.jpg").write_text("not an image")
    assert thumbnail_data_uri(tmp_path / "text.jpg", 100) == placeholder_data_uri(100)
    assert thumbnail_data_uri(tmp_path, 100) == placeholder_data_uri(100)  # a folder


def thumbnail_lines(caplog) -> tuple[list[str], list[str]]:
    """The thumbnail warnings logged: those naming one file, and the counts of the rest."""
    messages = [r.getMessage() for r in caplog.records if r.name.endswith(".thumbnails") and r.levelno == logging.WARNING]
    return [m for m in messages if m.startswith("report thumbnail: ")], [m for m in messages if m.startswith("report thumbnails: ")]


def test_a_report_run_names_a_few_unreadable_pictures_and_counts_the_rest(tmp_path, caplog):
    # A folder deleted during a long scan: every picture of its groups is gone.
    members = [entry(make_image(tmp_path / "deleted" / f"{n:02d}.jpg", size=(40, 30))) for n in range(12)]
    groups = [group(members[start], members[start + 1 : start + 4], [0.9] * 3) for start in range(0, 12, 4)]
    for member in members:
        os.unlink(member.path)
    with caplog.at_level(logging.WARNING, logger="dupe_scanner.reports.thumbnails"):
        write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    named, counted = thumbnail_lines(caplog)
    # Each picture fails twice (the graph's thumbnail and the review page's) but counts once.
    assert len(named) == NAMED_UNREADABLE == len({line.split(": ")[1] for line in named})
    assert all("the file disappeared" in line for line in named)
    assert counted == [
        f"report thumbnails: {12 - NAMED_UNREADABLE} more pictures could not be read ({12 - NAMED_UNREADABLE} gone, 0 unreadable "
        "or not images) and show as a grey placeholder; files that are gone leave the reports once their folder is indexed "
        "again (the service walks its folders by itself); the others need read access for the service user, or are damaged"
    ]
    nodes = page_data(tmp_path / "reports" / "duplicates.html")["nodes"]
    assert len(nodes) == 12 and all(node["image"] == placeholder_data_uri(SETTINGS.thumbnail_size) for node in nodes)


def test_few_unreadable_pictures_are_each_named_and_not_counted(tmp_path, caplog, groups, photos):
    with caplog.at_level(logging.WARNING, logger="dupe_scanner.reports.thumbnails"):
        write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    named, counted = thumbnail_lines(caplog)
    assert len(named) == 1 and photos["broken"].path in named[0] and counted == []


def test_the_count_of_unreadable_pictures_tells_gone_ones_from_unreadable_ones(caplog):
    unreadable = UnreadablePictures()
    with caplog.at_level(logging.WARNING, logger="dupe_scanner.reports.thumbnails"):
        for n in range(NAMED_UNREADABLE + 1500):
            unreadable.add(f"/photos/{n}.jpg", f"/photos/{n}.jpg: why", gone=n % 3 != 0)
        unreadable.add("/photos/0.jpg", "/photos/0.jpg: why, again", gone=False)
        unreadable.log_rest()
    named, [count] = thumbnail_lines(caplog)
    assert named == [f"report thumbnail: /photos/{n}.jpg: why" for n in range(NAMED_UNREADABLE)]
    assert count.startswith("report thumbnails: 1,500 more pictures could not be read (1,000 gone, 500 unreadable or not images)")


# --- large results: pages, caps, physics ----------------------------------------------------


def many_groups(tmp_path, sizes: list[int]) -> list[DuplicateGroup]:
    source = make_image(tmp_path / "source.jpg", size=(64, 48))
    result = []
    for g, size in enumerate(sizes):
        members = []
        for m in range(size):
            path = tmp_path / "many" / f"g{g:03d}" / f"m{m:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, path)
            members.append(entry(path, 64, 48, content_hash="same"))
        result.append(group(members[0], members[1:], [1.0] * (size - 1)))
    return result


def test_large_results_are_split_into_linked_pages(tmp_path):
    groups = many_groups(tmp_path, [5, 4, 3, 3, 2, 2, 2])
    settings = ReportSettings(html_max_nodes=6, thumbnail_size=32)
    reports = tmp_path / "reports"
    outcome = write_reports(groups, reports, settings, 0.6, generated_at=T0)
    files = ["duplicates.html", "duplicates-2.html", "duplicates-3.html", "duplicates-4.html"]
    assert outcome.html_pages == 4 and [p.name for p in outcome.written][2:] == [*files, "review.html"]
    seen: list[str] = []
    for number, name in enumerate(files, start=1):
        data = page_data(reports / name)
        assert 0 < len(data["nodes"]) <= 6
        seen.extend(node["title"][0] for node in data["nodes"])
        parser = parse_page(reports / name)
        links = [a["href"] for t, a in parser.tags if t == "a"]
        assert links == [f for f in files if f != name]
        text = "".join(parser.text)
        assert f"Page {number} of 4" in text
    assert sorted(seen) == sorted(p for g in groups for p in g.paths)  # every picture, once
    assert "group-1 to group-1" not in "".join(parse_page(reports / files[0]).text)

    outcome = write_reports(groups[:2], reports, settings, 0.6, generated_at=T0)
    assert outcome.html_pages == 2
    assert sorted(p.name for p in outcome.removed) == ["duplicates-3.html", "duplicates-4.html"]
    assert not (reports / "duplicates-3.html").exists()
    assert [a["href"] for t, a in parse_page(reports / "duplicates.html").tags if t == "a"] == ["duplicates-2.html"]

    outcome = write_reports(groups[:1], reports, settings, 0.6, generated_at=T0)
    assert outcome.html_pages == 1 and [p.name for p in outcome.removed] == ["duplicates-2.html"]
    parser = parse_page(reports / "duplicates.html")
    assert "nav" not in [t for t, _ in parser.tags] and "Page 1" not in "".join(parser.text)


def test_past_the_page_cap_groups_are_left_out_with_a_notice(tmp_path, monkeypatch):
    monkeypatch.setattr(html_report, "MAX_PAGES", 2)
    groups = many_groups(tmp_path, [3, 3, 2, 2, 2])
    settings = ReportSettings(html_max_nodes=3, thumbnail_size=32)
    outcome = write_reports(groups, tmp_path / "reports", settings, 0.6, generated_at=T0)
    assert outcome.html_pages == 2 and outcome.html_omitted_groups == 3
    text = " ".join(parse_page(tmp_path / "reports" / "duplicates.html").text)
    assert "3 more groups with 6 pictures are not shown" in text and "duplicates.json" in text
    assert len(json.loads((tmp_path / "reports" / "duplicates.json").read_text())) == 5


def test_a_group_larger_than_a_page_is_shown_in_part_with_a_notice(tmp_path):
    groups = many_groups(tmp_path, [7, 2])
    settings = ReportSettings(html_max_nodes=4, thumbnail_size=32)
    write_reports(groups, tmp_path / "reports", settings, 0.6, generated_at=T0)
    data = page_data(tmp_path / "reports" / "duplicates.html")
    assert len(data["nodes"]) == 4
    assert data["nodes"][0]["title"][0] == groups[0].anchor  # the anchor always shows
    assert "group-1 has 7 pictures; 4 are shown" in " ".join(parse_page(tmp_path / "reports" / "duplicates.html").text)
    assert len(page_data(tmp_path / "reports" / "duplicates-2.html")["nodes"]) == 2


def test_a_dense_group_draws_a_bounded_number_of_edges(tmp_path):
    [big] = many_groups(tmp_path, [30])
    everything = [FilePair(a, b, 0.95) for i, a in enumerate(big.paths) for b in big.paths[i + 1 :]]
    dense = DuplicateGroup(big.anchor, big.members, tuple(sorted(everything)))
    write_reports([dense], tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    data = page_data(tmp_path / "reports" / "duplicates.html")
    assert len(everything) == 435
    assert len(data["edges"]) == html_report.EDGES_PER_NODE * 30
    ids = {node["title"][0]: node["id"] for node in data["nodes"]}
    anchor_edges = [e for e in data["edges"] if ids[big.anchor] in (e["from"], e["to"])]
    assert len(anchor_edges) == 29  # every member stays linked to its anchor
    assert "120 of its 435 matching pairs are drawn" in " ".join(parse_page(tmp_path / "reports" / "duplicates.html").text)


def test_physics_only_for_small_pages_and_positions_are_fixed(tmp_path, monkeypatch):
    groups = many_groups(tmp_path, [4, 3, 2])
    write_reports(groups, tmp_path / "small", SETTINGS, 0.6, generated_at=T0)
    small = page_data(tmp_path / "small" / "duplicates.html")
    assert small["options"]["physics"]["enabled"] is True
    monkeypatch.setattr(html_report, "PHYSICS_MAX_NODES", 5)
    write_reports(groups, tmp_path / "large", SETTINGS, 0.6, generated_at=T0)
    large = page_data(tmp_path / "large" / "duplicates.html")
    assert large["options"]["physics"]["enabled"] is False
    assert large["options"]["layout"]["randomSeed"] == small["options"]["layout"]["randomSeed"]
    positions = [(node["x"], node["y"]) for node in large["nodes"]]
    assert all(isinstance(v, int) for xy in positions for v in xy)
    assert len(set(positions)) == len(positions)  # no two pictures on top of each other


def test_group_layout_keeps_pictures_apart():
    for count in (2, 3, 7, 8, 20, 100):
        offsets, radius = html_report.group_offsets(count)
        assert len(offsets) == count
        closest = min(
            ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5
            for i, (ax, ay) in enumerate(offsets)
            for bx, by in offsets[i + 1 :]
        )
        assert closest >= html_report.SPACING * 0.85, count
        assert all((x * x + y * y) ** 0.5 <= radius + 1e-6 for x, y in offsets)


def test_an_unchanged_page_is_not_rendered_again(tmp_path, groups, monkeypatch):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    calls = []
    real = html_report.thumbnail_data_uris

    def counted(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(html_report, "thumbnail_data_uris", counted)
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T1)
    assert calls == []  # nothing decoded when nothing changed
    write_reports(groups, tmp_path / "reports", ReportSettings(html_max_nodes=2000, thumbnail_size=48), 0.6, generated_at=T1)
    assert len(calls) == 1  # a new thumbnail size is a change


def test_a_page_is_written_again_when_what_it_draws_changes(tmp_path, groups):
    """The fingerprint is made of the page's groups, not of the graph drawn from them: each
    thing the graph shows, and the code that draws it, must still change it."""
    reports = tmp_path / "reports"
    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)
    first = groups[0]
    converted = replace(first.members[0], format="WEBP" if first.members[0].format != "WEBP" else "PNG")  # only its tooltip shows it
    other_format = [DuplicateGroup(first.anchor, (converted, *first.members[1:]), first.pairs), *groups[1:]]
    assert "duplicates.html" in {p.name for p in write_reports(other_format, reports, SETTINGS, 0.6, generated_at=T1).written}

    moved = [DuplicateGroup(first.members[-1].path, first.members, first.pairs), *groups[1:]]  # another anchor
    assert "duplicates.html" in {p.name for p in write_reports(moved, reports, SETTINGS, 0.6, generated_at=T1).written}
    assert write_reports(moved, reports, SETTINGS, 0.6, generated_at=T1).written == ()


def test_a_page_drawn_by_other_code_is_written_again(tmp_path, groups, monkeypatch):
    reports = tmp_path / "reports"
    write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0)
    monkeypatch.setattr(html_report, "code_digest", lambda: "a later release's drawing code")
    assert {p.name for p in write_reports(groups, reports, SETTINGS, 0.6, generated_at=T0).written} == {"duplicates.html"}


def test_many_thinned_groups_share_one_notice(tmp_path):
    dense = []
    for big in many_groups(tmp_path, [12, 12, 12]):
        everything = [FilePair(a, b, 0.95) for i, a in enumerate(big.paths) for b in big.paths[i + 1 :]]
        dense.append(DuplicateGroup(big.anchor, big.members, tuple(sorted(everything))))
    write_reports(dense, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    notices = [line for line in parse_page(tmp_path / "reports" / "duplicates.html").text if "matching pairs are drawn" in line]
    assert notices == [
        "In 3 big groups (group-1, group-2, group-3) 144 of their 198 matching pairs are drawn (each anchor's and "
        "the strongest); duplicates.details.json lists every pair."
    ]
