"""The page, style and script of ``duplicates.html``, owned by dupe-scanner (not pyvis's).

pyvis 0.3.2's own template cannot be used safely or offline: it links Bootstrap from a
CDN even with ``cdn_resources="in_line"``, swaps every tooltip to raw ``innerHTML`` once
any title contains the text ``href``, and writes node ids unescaped into its select
menu. This template has no such paths:

- Jinja2 autoescaping is on; the only text interpolated into markup is numbers, times
  and fixed sentences.
- All graph data (paths included) travels as JSON inside
  ``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as ``\\u003c``,
  ``\\u003e``, ``\\u0026``, so no file name can close the element or start a tag.
- The script turns every tooltip into DOM elements filled with ``textContent``; node ids
  are opaque integers; labels are drawn on the canvas.
- A Content-Security-Policy allows only the page's own two scripts (by hash), images
  from ``data:`` URIs and no network at all, so even a mistake in escaping could not
  run an injected handler or fetch anything.
"""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="dupe-scanner-content" content="{{ fingerprint }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>{{ vis_css|safe }}</style>
<style>{{ page_css|safe }}</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p class="summary">{{ summary }}</p>
<p class="summary">Generated {{ generated_at }}. {{ help }}</p>
<ul class="legend">
{%- for item in legend %}
<li><span class="swatch" style="background: {{ item.color }}"></span>{{ item.text }}</li>
{%- endfor %}
<li><span class="swatch keep"></span>suggested file to keep</li>
</ul>
{%- for notice in notices %}
<p class="notice">{{ notice }}</p>
{%- endfor %}
{%- if pages|length > 1 %}
<nav>Pages:
{%- for page in pages %}
{% if page.current %}<span class="current">{{ page.number }}</span>{% else %}<a href="{{ page.file }}">{{ page.number }}</a>{% endif %}
{%- endfor %}
</nav>
{%- endif %}
</header>
<main id="graph"></main>
<noscript><p class="notice">The graph needs JavaScript. duplicates.json lists the same groups.</p></noscript>
<script type="application/json" id="report-data">{{ data_json|safe }}</script>
<script>{{ vis_js|safe }}</script>
<script>{{ page_js|safe }}</script>
</body>
</html>
"""

STYLE = """
html, body { margin: 0; padding: 0; height: 100%; font-family: system-ui, sans-serif; color: #202124; }
body { display: flex; flex-direction: column; }
header { padding: 0.5rem 1rem; border-bottom: 1px solid #ddd; background: #fafafa; }
h1 { font-size: 1.2rem; margin: 0.2rem 0; }
p { margin: 0.2rem 0; font-size: 0.9rem; }
.notice { color: #8a4b00; }
ul.legend { list-style: none; margin: 0.3rem 0; padding: 0; display: flex; flex-wrap: wrap; gap: 1rem; font-size: 0.85rem; }
ul.legend li { display: flex; align-items: center; gap: 0.35rem; }
.swatch { display: inline-block; width: 2rem; height: 0.6rem; border: 1px solid #999; }
.swatch.keep { width: 0.9rem; height: 0.9rem; border: 3px solid #1565c0; background: #fff; }
nav { font-size: 0.9rem; display: flex; flex-wrap: wrap; gap: 0.5rem; margin-top: 0.3rem; }
nav .current { font-weight: bold; }
main#graph { flex: 1 1 auto; min-height: 400px; position: relative; }
div.vis-tooltip { max-width: 40rem; white-space: normal; font-family: system-ui, sans-serif; font-size: 0.85rem; }
div.vis-tooltip .tip-head { font-weight: bold; overflow-wrap: anywhere; white-space: pre-wrap; }
div.vis-tooltip .tip-line { color: #444; white-space: pre-wrap; }
"""

SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);

  // Tooltips are DOM elements holding plain text: a file name is never parsed as HTML.
  function tooltip(lines) {
    var box = document.createElement("div");
    box.className = "tip";
    for (var i = 0; i < lines.length; i++) {
      var row = document.createElement("div");
      row.className = i === 0 ? "tip-head" : "tip-line";
      row.textContent = String(lines[i]);
      box.appendChild(row);
    }
    return box;
  }
  function withTooltips(items) {
    return items.map(function (item) {
      var copy = Object.assign({}, item);
      if (copy.title !== undefined && copy.title !== null) {
        copy.title = tooltip(Array.isArray(copy.title) ? copy.title : [copy.title]);
      }
      return copy;
    });
  }

  var container = document.getElementById("graph");
  var network = new vis.Network(
    container,
    { nodes: new vis.DataSet(withTooltips(data.nodes)), edges: new vis.DataSet(withTooltips(data.edges)) },
    data.options
  );
  window.duplicateGraph = network; // for the browser console (and the browser tests)
  network.once("afterDrawing", function () {
    document.body.setAttribute("data-graph", "drawn");
  });
  if (!data.options.physics || !data.options.physics.enabled) {
    network.fit();
  }
  // Draw at once (and again when the physics has settled), not only on the next
  // animation frame: hidden and headless windows may not get one for a while.
  // duplicates.html#group-17 (a link from review.html) selects that group and zooms to it.
  function focusGroup() {
    var key;
    try { key = decodeURIComponent(window.location.hash.slice(1)); } catch (malformed) { return; }
    // Own keys only: "#constructor" must not reach the object's prototype.
    var ids = data.groups && Object.prototype.hasOwnProperty.call(data.groups, key) ? data.groups[key] : null;
    if (!ids) { return; }
    network.selectNodes(ids);
    network.fit({nodes: ids, animation: false});
    document.body.setAttribute("data-focused", window.location.hash.slice(1));
  }
  window.addEventListener("hashchange", focusGroup);
  network.once("stabilizationIterationsDone", function () {
    focusGroup();  // again: the physics moved the pictures since
    network.redraw();
  });
  focusGroup();
  network.redraw();
})();
"""
