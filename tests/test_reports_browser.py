"""duplicates.html in a real browser: it draws, and no file name runs as script.

Headless Chromium loads the page from disk with no network and dumps the DOM after the
page's timers ran. The hostile file names carry a canary (an ``onerror`` handler that
marks ``<body data-pwned>``), so any way they reach HTML shows in the dump. One test
hovers every picture and every edge so that every tooltip is built; a control test does
the same to pyvis 0.3.2's own template and sees the canary fire, which proves the hover
harness would catch it. Skipped where Chromium is not installed (CI installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dupe_scanner.display import visible
from dupe_scanner.reports import write_reports
from dupe_scanner.settings import ReportSettings
from tests.report_helpers import ALERT, CANARY, SETTINGS, T0
from tests.test_reports import many_groups

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome") or ""  # "": none
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (apt-get install chromium)")

# Hovers the centre of every node and three points along every edge, one after the other,
# and records the HTML of whatever tooltip vis-network (or pyvis's popup) shows.
HOVER_HARNESS = """
(function () {
  "use strict";
  var tips = [];
  function finish(note) {
    var out = document.createElement("pre");
    out.id = "harness-result";
    out.textContent = JSON.stringify({note: note, tips: tips});
    document.body.appendChild(out);
    document.body.setAttribute("data-harness", "done");
  }
  function start() {
    var net = window.duplicateGraph || window.network;
    if (!net) { finish("no network"); return; }
    net.setOptions({physics: false});
    net.redraw();  // hover hit-testing needs one drawing; headless may not have had a frame yet
    var canvas = document.querySelector("div.vis-network canvas");
    var positions = net.getPositions();
    var targets = Object.keys(positions).map(function (id) { return positions[id]; });
    net.body.data.edges.get().forEach(function (e) {
      var a = positions[e.from], b = positions[e.to];
      [0.5, 0.35, 0.65].forEach(function (t) {  // a node or label may cover the middle
        targets.push({x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y)});
      });
    });
    var i = 0;
    function next() {
      document.querySelectorAll("div.vis-tooltip, div.popup").forEach(function (tip) {
        if (tip.innerHTML && tips.indexOf(tip.innerHTML) < 0) { tips.push(tip.innerHTML); }
      });
      if (i >= targets.length) { finish("hovered " + targets.length); return; }
      var p = net.canvasToDOM(targets[i++]);
      var rect = canvas.getBoundingClientRect();
      canvas.dispatchEvent(new MouseEvent("mousemove", {bubbles: true, clientX: rect.left + p.x, clientY: rect.top + p.y}));
      setTimeout(next, 300);
    }
    next();
  }
  setTimeout(start, 2000);
})();
"""


def dump_dom(page: Path, profile: Path, budget_ms: int = 20000) -> str:
    """The DOM of ``page`` after ``budget_ms`` of (virtual) time in headless Chromium."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def body_attributes(dom: str) -> str:
    match = re.search(r"<body([^>]*)>", dom)
    assert match, dom[:500]
    return match.group(1)


def with_harness(page_html: str, keep_csp: bool = False) -> str:
    if not keep_csp:  # take away the second line of defence: escaping alone must hold
        page_html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page_html)
    return page_html.replace("</body>", f"<script>{HOVER_HARNESS}</script></body>")


def harness_result(dom: str) -> dict:
    match = re.search(r'<pre id="harness-result">(.*?)</pre>', dom, re.S)
    assert match, "the hover harness did not finish"
    return json.loads(html.unescape(match.group(1)))


def test_the_page_draws_and_runs_no_script_from_file_names(tmp_path, groups):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    dom = dump_dom(tmp_path / "reports" / "duplicates.html", tmp_path / "profile")
    attributes = body_attributes(dom)
    assert 'data-graph="drawn"' in attributes  # vis-network ran and drew the canvas
    assert "data-pwned" not in attributes
    assert "<canvas" in dom
    assert re.search(r"<img[^>]*onerror", dom) is None


def test_every_tooltip_shows_file_names_as_text(tmp_path, groups, photos):
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    page = tmp_path / "harness.html"
    page.write_text(with_harness((tmp_path / "reports" / "duplicates.html").read_text(encoding="utf-8")), encoding="utf-8")
    dom = dump_dom(page, tmp_path / "profile", budget_ms=30000)
    assert "data-pwned" not in body_attributes(dom)
    result = harness_result(dom)
    tips = result["tips"]
    nodes = sum(len(g.members) for g in groups)
    edges = sum(len(g.pairs) for g in groups)
    assert result["note"] == f"hovered {nodes + 3 * edges}"
    for name in (CANARY, ALERT, "breaker", "new\nline.jpg"):
        path = visible(photos[name].path)  # a line break in a name shows as \\n
        assert any(html.escape(path, quote=False) in tip for tip in tips), path  # shown, as text
    assert all("<img" not in tip and "<script" not in tip for tip in tips)
    assert any(">0.93<" in tip for tip in tips) and any(">0.62<" in tip for tip in tips)  # edge scores


def test_the_csp_alone_also_blocks_injected_handlers(tmp_path, groups):
    """Defence in depth: with the policy in place, even a handler put into the page does not run."""
    write_reports(groups, tmp_path / "reports", SETTINGS, 0.6, generated_at=T0)
    text = (tmp_path / "reports" / "duplicates.html").read_text(encoding="utf-8")
    injected = "<img src=\"data:,broken\" onerror=\"document.body.setAttribute('data-pwned','3')\">"
    text = text.replace('<main id="graph"></main>', '<main id="graph"></main>' + injected)
    assert injected in text
    page = tmp_path / "injected.html"
    page.write_text(text, encoding="utf-8")
    attributes = body_attributes(dump_dom(page, tmp_path / "profile"))
    assert "data-pwned" not in attributes and 'data-graph="drawn"' in attributes


def test_control_pyvis_own_template_runs_the_canary(tmp_path):
    """The harness catches the bug it guards against: pyvis 0.3.2's template runs the name."""
    import pyvis
    from pyvis.network import Network

    if pyvis.__version__ != "0.3.2":
        pytest.skip(f"the control is about pyvis 0.3.2, found {pyvis.__version__}")
    network = Network(height="600px", width="100%", cdn_resources="in_line")
    network.add_node(CANARY, label="a", title=CANARY)
    network.add_node("b", label="b", title="b")
    network.add_edge(CANARY, "b", title="0.9")
    page = tmp_path / "pyvis.html"
    page.write_text(with_harness(network.generate_html()), encoding="utf-8")
    dom = dump_dom(page, tmp_path / "profile")
    assert 'data-pwned="1"' in body_attributes(dom)


def test_a_full_page_without_physics_draws(tmp_path):
    groups = many_groups(tmp_path, [40] * 10 + [2] * 100)  # 600 pictures on one page
    settings = ReportSettings(html_max_nodes=600, thumbnail_size=32)
    outcome = write_reports(groups, tmp_path / "reports", settings, 0.6, generated_at=T0)
    assert outcome.html_pages == 1
    dom = dump_dom(tmp_path / "reports" / "duplicates.html", tmp_path / "profile", budget_ms=10000)
    assert 'data-graph="drawn"' in body_attributes(dom)
