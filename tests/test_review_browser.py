"""review.html in a real browser: names stay text, decisions travel back through the real CLI.

Headless Chromium loads the page from disk with no network, as in ``test_reports_browser``;
a small harness script added to the page (its policy removed, so escaping alone must
keep the canaries inert) clicks buttons, changes the sort and filters, and writes what it
saw into ``<pre id="harness-result">``. The export it reads is the command line the page
offers; the decisions file in it goes to the real ``dupe-scanner decide --import``.
Skipped where Chromium is not installed (CI installs it).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from dupe_scanner.display import visible
from dupe_scanner.reports import write_reports
from tests.cli import call_main, run_cli, write_settings
from tests.photos import make_photo, save
from tests.report_helpers import CANARY, SETTINGS, T0
from tests.test_reports import PageParser
from tests.test_reports_browser import CHROMIUM, body_attributes, dump_dom

pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (apt-get install chromium)")

NOT_UTF8 = "caf\udce9.jpg"  # the byte 0xE9, as os.fsdecode gives it

# Shared by every harness: what the page shows, in order.
HARNESS_HEAD = """
  function shown() {
    return Array.prototype.map.call(document.querySelectorAll("#open-groups section.group"), function (s) {
      return s.getAttribute("data-group");
    });
  }
  function choose(id, value) { var c = document.getElementById(id); c.value = value; c.dispatchEvent(new Event("change")); }
  function finish(result) {
    var out = document.createElement("pre");
    out.id = "harness-result";
    out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  }
"""


def run_harness(page: Path, harness: str, profile: Path, fragment: str = "") -> tuple[dict, str]:
    """Run ``harness`` after the page's own script; its result, and the DOM."""
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text(encoding="utf-8"))
    probe = page.with_name("harness.html")  # beside the page: thumbnails and links resolve
    probe.write_text(text.replace("</body>", f"<script>(function () {{{HARNESS_HEAD}{harness}}})();</script></body>"), encoding="utf-8")
    dom = dump_dom(probe, profile, budget_ms=5000)
    match = re.search(r'<pre id="harness-result">(.*?)</pre>', dom, re.S)
    assert match, "the harness did not finish: " + dom[-2000:]
    return json.loads(html.unescape(match.group(1))), dom


def test_the_page_shows_every_group_with_names_as_text_and_runs_none(tmp_path, groups, photos):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0, watched_folders=[tmp_path / "photos"])
    dom = dump_dom(tmp_path / "reports" / "review.html", tmp_path / "profile", budget_ms=5000)
    attributes = body_attributes(dom)
    assert 'data-review="ready"' in attributes and "data-pwned" not in attributes
    parser = PageParser()
    parser.feed(dom)
    images = [attributes for tag, attributes in parser.tags if tag == "img"]
    assert len(images) == 8 and all(set(image) == {"loading", "decoding", "alt", "src"} for image in images)
    assert CANARY in [image["alt"] for image in images]  # a name is an attribute's text, never a handler
    assert len(re.findall(r'<section class="group[^"]*" id="group-\d+"', dom)) == len(groups)
    for name in (CANARY, "new\nline.jpg", "q\"uote's & ampersand.png"):
        shown = visible(Path(photos[name].path).name)  # relative to the watched folder: the name
        assert f'<div class="path">{html.escape(shown, quote=False)}</div>' in dom, shown
    breaker = visible(str(Path(photos["breaker"].path).relative_to(tmp_path / "photos")))
    assert html.escape(breaker, quote=False) in dom  # a path below the folder, as text
    assert 'href="duplicates.html#group-1"' in dom
    assert "reclaimable in all 3 groups" in dom


def test_sort_and_filters_change_what_is_shown(tmp_path, groups):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    harness = """
      var result = {start: shown()};
      choose("sort", "score"); result.score = shown();
      choose("sort", "size"); result.size = shown();
      document.getElementById("exact").checked = true; choose("exact", "on"); result.exact = shown();
      document.getElementById("exact").checked = false; choose("kind", "0"); result.identical = shown();
      choose("kind", "-1"); document.getElementById("text").value = "PLAIN"; window.duplicateReview.apply();
      result.search = shown();
      finish(result);
    """
    result, dom = run_harness(tmp_path / "reports" / "review.html", harness, tmp_path / "profile")
    assert "data-pwned" not in body_attributes(dom)
    assert result["start"] == ["1", "2", "3"]  # most reclaimable bytes first (group 3 keeps its biggest)
    assert result["score"] == ["3", "2", "1"]  # weakest score first: 0.61, 0.62, 0.7
    assert result["size"] == ["1", "3", "2"]  # 4, 3, 2 pictures
    assert result["exact"] == []  # every group has a near member
    assert result["identical"] == []  # no byte-identical copies among these
    assert result["search"] == ["2"]  # plain.jpg, case-insensitive


@pytest.fixture
def library(tmp_path):
    """Two photographs, each with a smaller copy under a hostile or non-UTF-8 name, indexed and scanned."""
    photos = tmp_path / "photos"
    a = save(make_photo(21, (640, 480)), photos / "a.jpg", quality=92)
    save(Image.open(a).resize((320, 240)), photos / CANARY, quality=90)
    b = save(make_photo(22, (640, 480)), photos / "b.jpg", quality=92)
    save(Image.open(b).resize((320, 240)), photos / NOT_UTF8, quality=90)
    settings = write_settings(tmp_path, f'[[watch]]\npath = "{photos}"\n')
    for command in (("index", "--dir", str(photos)), ("scan",)):
        done = call_main(*command, config=settings)
        assert done.returncode == 0, done.stderr
    return tmp_path, photos, settings


def test_decisions_made_on_the_page_are_imported_by_the_real_cli(library):
    root, photos, settings = library
    review = root / "reports" / "review.html"
    # The group of a.jpg: keep the smaller copy (the canary). The other group: not duplicates.
    harness = """
      var result = {before: shown()};
      document.querySelectorAll("#open-groups section.group").forEach(function (section) {
        var names = Array.prototype.map.call(section.querySelectorAll(".path"), function (p) { return p.textContent; });
        if (names.indexOf("a.jpg") >= 0) {
          var figure = section.querySelectorAll("figure")[names.indexOf("a.jpg") === 0 ? 1 : 0];
          figure.querySelector("button").click();
        }
      });
      document.querySelectorAll("#open-groups section.group").forEach(function (section) {
        var names = Array.prototype.map.call(section.querySelectorAll(".path"), function (p) { return p.textContent; });
        if (names.indexOf("b.jpg") >= 0) {
          Array.prototype.filter.call(section.querySelectorAll(".group-head button"), function (b) {
            return b.textContent === "Not duplicates";
          })[0].click();
        }
      });
      result.pending = document.getElementById("pending").textContent;
      result.saveable = !document.getElementById("save").hidden && document.getElementById("save").href.indexOf("blob:") === 0;
      document.getElementById("show-command").click();
      result.command = document.getElementById("export-command").value;
      result.notes = Array.prototype.map.call(document.querySelectorAll(".group-note"), function (n) { return n.textContent; });
      finish(result);
    """
    result, dom = run_harness(review, harness, root / "profile")
    assert "data-pwned" not in body_attributes(dom)
    assert len(result["before"]) == 2 and result["pending"].startswith("2 decisions") and result["saveable"]
    assert "keep: " + CANARY in result["notes"]
    command = result["command"].splitlines()
    assert command[0] == "cat > dupe-scanner-decisions.json <<'END_OF_DECISIONS'"
    assert command[-2:] == ["END_OF_DECISIONS", "dupe-scanner decide --import dupe-scanner-decisions.json"]
    exported = "\n".join(command[1:-2]) + "\n"
    assert exported.isascii()  # names escaped: nothing for a terminal to mangle or disguise
    document = json.loads(exported)
    assert [d["kind"] for d in document["decisions"]] == ["keep", "not-duplicates"] or [
        d["kind"] for d in document["decisions"]
    ] == ["not-duplicates", "keep"]
    paths = {f["path"] for d in document["decisions"] for f in d["files"]}
    assert paths == {str(photos / CANARY), str(photos / "b.jpg"), str(photos / NOT_UTF8)}  # exact names, not shown ones

    decisions_file = root / "dupe-scanner-decisions.json"
    decisions_file.write_text(exported, encoding="ascii")
    imported = run_cli("decide", "--import", str(decisions_file), config=settings)
    assert imported.returncode == 0, imported.stderr
    listed = run_cli("decide", "list", config=settings)
    assert "keep" in listed.stdout and "not-duplicates" in listed.stdout

    rescanned = run_cli("scan", config=settings)
    assert rescanned.returncode == 0, rescanned.stderr
    details = json.loads((root / "reports" / "duplicates.details.json").read_text())
    assert len(details["groups"]) == 1 and details["groups"][0]["suggested_keep"] == str(photos / CANARY)
    harness = """
      var resolved = document.getElementById("resolved");
      var result = {open: shown(), summary: document.getElementById("resolved-summary").textContent, closed: !resolved.open};
      resolved.open = true;
      resolved.dispatchEvent(new Event("toggle"));
      result.resolved = document.querySelectorAll("#resolved-groups section.group").length;
      finish(result);
    """
    result, _dom = run_harness(review, harness, root / "profile")
    assert result["open"] == [] and result["closed"] and result["resolved"] == 1
    assert result["summary"].startswith("Resolved groups (1)")


def test_the_graph_link_opens_the_group_on_its_page(tmp_path, groups):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    page = tmp_path / "reports" / "duplicates.html"
    dom = dump_dom_uri(page.as_uri() + "#group-2", tmp_path / "profile")
    assert 'data-focused="group-2"' in body_attributes(dom)


def dump_dom_uri(uri: str, profile: Path) -> str:
    """``dump_dom`` for a URI with a fragment (``dump_dom`` takes a path)."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-dev-shm-usage", "--disable-extensions", f"--user-data-dir={profile}", "--window-size=1200,900",
        "--virtual-time-budget=10000", "--dump-dom", uri,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_fragment_that_names_no_group_leaves_the_graph_as_it_is(tmp_path, groups):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    uri = (tmp_path / "reports" / "duplicates.html").as_uri()
    for fragment in ("#constructor", "#%E0", "#group-99"):
        attributes = body_attributes(dump_dom_uri(uri + fragment, tmp_path / "profile"))
        assert 'data-graph="drawn"' in attributes and "data-focused" not in attributes, fragment
