"""The page, style and script of ``review.html``: every group as a row of pictures.

Kept inert the way ``html_template`` keeps the graph: Jinja2 autoescaping for the few
texts in markup, all data (file names included) as JSON in
``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped, and a script
that builds every element with ``createElement`` and ``textContent``; it never assigns
``innerHTML``. A Content-Security-Policy allows only this script (by hash), images from
the page's own folder, and nothing from the network.

At 100,000 groups the page stays usable by rendering little: the data is parsed once, the
order and filters are arrays of numbers, and groups are built as DOM in chunks of
``CHUNK`` as the reader scrolls near the end of what is shown (or clicks "show more").
Thumbnails are files beside the page, loaded lazily by the browser.
"""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generated" content="{{ generated_at }}">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>{{ page_css|safe }}</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p class="summary">{{ summary }} <span id="generated"></span></p>
<p class="summary" id="totals"></p>
<div class="controls">
<label>Sort <select id="sort">
<option value="reclaimable">reclaimable bytes</option>
<option value="size">group size</option>
<option value="score">score (weakest first)</option>
<option value="date">date (newest first)</option>
</select></label>
<label>Folder <select id="folder"><option value="-1">all</option></select></label>
<label>Kind <select id="kind"><option value="-1">all</option></select></label>
<label><input type="checkbox" id="exact"> exact duplicates only</label>
<label>Path contains <input type="search" id="text" size="24"></label>
<span id="showing"></span>
</div>
<div class="export">
<span id="pending">No decisions on this page yet.</span>
<a id="save" download="dupe-scanner-decisions.json" hidden>Save decisions file</a>
<button type="button" id="show-command" disabled>Show command line</button>
<p class="help">{{ help }}</p>
<textarea id="export-command" readonly rows="8" hidden></textarea>
</div>
</header>
<main>
<div id="open-groups"></div>
<button type="button" class="more" id="open-more" hidden>Show more groups</button>
<details id="resolved">
<summary id="resolved-summary">Resolved groups</summary>
<div id="resolved-groups"></div>
<button type="button" class="more" id="resolved-more" hidden>Show more groups</button>
</details>
</main>
<noscript><p class="notice">This page needs JavaScript. duplicates.details.json lists the same groups.</p></noscript>
<script type="application/json" id="review-data">{{ data_json|safe }}</script>
<script>{{ page_js|safe }}</script>
</body>
</html>
"""

STYLE = """
body { margin: 0; font-family: system-ui, sans-serif; color: #202124; background: #fff; }
header { position: sticky; top: 0; z-index: 1; padding: 0.4rem 1rem; border-bottom: 1px solid #ddd; background: #fafafa; }
h1 { font-size: 1.2rem; margin: 0.2rem 0; }
h2 { font-size: 1rem; margin: 0; }
p { margin: 0.2rem 0; font-size: 0.9rem; }
.controls, .export { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; align-items: center; font-size: 0.85rem; margin: 0.3rem 0; }
.export .help { flex-basis: 100%; color: #555; font-size: 0.8rem; }
#export-command { flex-basis: 100%; font-family: monospace; font-size: 0.8rem; }
main { padding: 0.5rem 1rem; }
section.group { border: 1px solid #ddd; border-radius: 4px; margin: 0 0 0.8rem; padding: 0.4rem 0.6rem; }
section.group.apart { background: #f3f3f3; }
.group-head { display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; align-items: baseline; font-size: 0.85rem; }
.group-note { color: #1b5e20; font-size: 0.85rem; }
.pictures { display: flex; flex-wrap: wrap; gap: 0.6rem; margin-top: 0.4rem; }
figure.picture { margin: 0; width: 240px; border: 2px solid transparent; padding: 3px; font-size: 0.78rem; }
figure.picture.keep { border-color: #1565c0; }
figure.picture .frame { width: 224px; height: 224px; display: flex; align-items: center; justify-content: center; background: #f4f4f4; }
figure.picture img { max-width: 224px; max-height: 224px; }
figure.picture .missing { color: #888; }
figcaption div { overflow-wrap: anywhere; }
figcaption .path { font-weight: bold; white-space: pre-wrap; }
figcaption .badge { color: #1565c0; }
figcaption .kinds { color: #8a4b00; }
button.more { margin: 0.5rem 0; }
details#resolved > summary { cursor: pointer; font-weight: bold; margin: 0.5rem 0; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("review-data").textContent);
  var groups = data.groups;
  // Field positions: see review_data.py.
  var G_PAGE = 0, G_DECIDED = 1, G_KEEP = 2, G_REASON = 4, G_MEMBERS = 5;
  var M_REL = 0, M_FOLDER = 1, M_SIZE = 2, M_W = 3, M_H = 4, M_FORMAT = 5, M_MTIME = 6, M_SCORE = 7,
      M_KINDS = 8, M_HASH = 9, M_THUMB = 10, M_PROTECTED = 11, M_SHOWN = 12;
  var CHUNK = 40;
  var HASH = /^[0-9a-f]{64}$/;
  var choices = {};   // group index -> {keep: member index or undefined, apart: [[member index, ...], ...]}
  var selected = {};  // group index -> {member index: true}

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = String(text); }  // names are text, never markup
    return node;
  }
  function button(label, onClick) {
    var node = el("button", null, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }
  function human(bytes) {
    var units = ["bytes", "kB", "MB", "GB", "TB"], value = bytes, unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit++; }
    return unit === 0 ? value + " bytes" : value.toFixed(1) + " " + units[unit];
  }
  function day(seconds) { return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }
  function fullPath(member) {
    var folder = data.folders[member[M_FOLDER]];
    return (folder.charAt(folder.length - 1) === "/" ? folder : folder + "/") + member[M_REL];
  }
  function shownName(member) { return member.length > M_SHOWN ? member[M_SHOWN] : member[M_REL]; }
  function thumbnail(member) {
    var field = member[M_THUMB], hash = member[M_HASH];
    if (field === 1) { return data.thumbs + hash.slice(0, 2) + "/" + hash + ".jpg"; }
    return field === 0 ? null : field;
  }
  function kindNames(mask) {
    return data.kinds.filter(function (_kind, bit) { return mask & (1 << bit); });
  }

  // --- what the reader decided on this page ---------------------------------------------
  function choiceOf(gi) { return choices[gi] || (choices[gi] = {keep: undefined, apart: []}); }
  function keepOf(gi) {
    var choice = choices[gi];
    return choice && choice.keep !== undefined ? choice.keep : groups[gi][G_KEEP];
  }
  function wholeGroupApart(gi) {
    var choice = choices[gi];
    return !!choice && choice.apart.some(function (set) { return set.length === distinctCount(gi); });
  }
  function distinctCount(gi) {
    var seen = {};
    groups[gi][G_MEMBERS].forEach(function (m) { seen[m[M_HASH]] = true; });
    return Object.keys(seen).length;
  }
  function reclaimable(gi) {
    if (wholeGroupApart(gi)) { return 0; }
    var keep = keepOf(gi), total = 0;
    groups[gi][G_MEMBERS].forEach(function (m, mi) {
      if (mi !== keep && !m[M_PROTECTED]) { total += m[M_SIZE]; }
    });
    return total;
  }
  function decisionCount() {
    var count = 0;
    Object.keys(choices).forEach(function (gi) {
      count += choices[gi].apart.length + (choices[gi].keep !== undefined ? 1 : 0);
    });
    return count;
  }
  function keepHere(gi, mi) {
    choiceOf(gi).keep = mi;
    changed(gi, "");
  }
  function markApart(gi) {
    var members = groups[gi][G_MEMBERS], chosen = Object.keys(selected[gi] || {}).map(Number);
    if (chosen.length < 2) { chosen = members.map(function (_m, mi) { return mi; }); }
    var byHash = {}, set = [];
    chosen.sort(function (a, b) { return a - b; }).forEach(function (mi) {
      if (!byHash[members[mi][M_HASH]]) { byHash[members[mi][M_HASH]] = true; set.push(mi); }
    });
    if (set.length < 2) {
      changed(gi, "These files have identical bytes: they are one picture, so they cannot be 'not duplicates'.");
      return;
    }
    choiceOf(gi).apart.push(set);
    selected[gi] = {};
    changed(gi, "");
  }
  function undo(gi) {
    delete choices[gi];
    selected[gi] = {};
    changed(gi, "");
  }

  // --- the decisions file (daemon/decision_file.py, version 1) ---------------------------
  function fileRef(member) {
    var ref = {path: fullPath(member)};
    if (HASH.test(member[M_HASH])) { ref.content_hash = member[M_HASH]; }  // the hash outlives a move
    return ref;
  }
  function exportDocument() {
    var decisions = [];
    Object.keys(choices).map(Number).sort(function (a, b) { return a - b; }).forEach(function (gi) {
      var choice = choices[gi], members = groups[gi][G_MEMBERS];
      choice.apart.forEach(function (set) {
        decisions.push({kind: "not-duplicates", files: set.map(function (mi) { return fileRef(members[mi]); })});
      });
      if (choice.keep !== undefined) { decisions.push({kind: "keep", files: [fileRef(members[choice.keep])]}); }
    });
    return {format: "dupe-scanner decisions", version: 1, decisions: decisions};
  }
  // ASCII only: a name's bidirectional controls cannot disguise the command line, and a
  // terminal or editor cannot mangle the file's encoding.
  function exportText() {
    return JSON.stringify(exportDocument(), null, 1).replace(/[\u007f-\uffff]/g, function (c) {
      return "\\u" + ("000" + c.charCodeAt(0).toString(16)).slice(-4);
    }) + "\n";
  }
  var saveLink = document.getElementById("save"), savedUrl = null;
  function updateExport() {
    var count = decisionCount();
    document.getElementById("pending").textContent = count
      ? count + " decision" + (count === 1 ? "" : "s") + " on this page, not recorded until exported and imported."
      : "No decisions on this page yet.";
    if (savedUrl) { URL.revokeObjectURL(savedUrl); savedUrl = null; }
    saveLink.hidden = !count;
    document.getElementById("show-command").disabled = !count;
    if (count) {
      savedUrl = URL.createObjectURL(new Blob([exportText()], {type: "application/json"}));
      saveLink.href = savedUrl;
    }
    var area = document.getElementById("export-command");
    if (!area.hidden) { area.value = commandLine(); }
  }
  function commandLine() {
    // A quoted here-document: the shell expands nothing in it, and no line of the JSON
    // can equal the end marker (strings hold no raw line breaks).
    return "cat > dupe-scanner-decisions.json <<'END_OF_DECISIONS'\n" + exportText() +
      "END_OF_DECISIONS\ndupe-scanner decide --import dupe-scanner-decisions.json\n";
  }
  document.getElementById("show-command").addEventListener("click", function () {
    var area = document.getElementById("export-command");
    area.hidden = false;
    area.value = commandLine();
    area.select();
  });

  // --- one group -----------------------------------------------------------------------
  function pictureCard(gi, mi) {
    var group = groups[gi], member = group[G_MEMBERS][mi], keep = keepOf(gi), choice = choices[gi];
    var figure = el("figure", "picture" + (mi === keep ? " keep" : ""));
    figure.setAttribute("data-member", String(mi));
    var frame = el("div", "frame"), url = thumbnail(member);
    if (url) {
      var image = el("img");
      image.loading = "lazy";
      image.decoding = "async";
      image.alt = shownName(member);
      image.src = url;
      frame.appendChild(image);
    } else {
      frame.appendChild(el("span", "missing", "no thumbnail: the file could not be read"));
    }
    figure.appendChild(frame);
    var caption = el("figcaption");
    caption.appendChild(el("div", "path", shownName(member)));
    caption.appendChild(el("div", "folder", "in " + data.folders_shown[member[M_FOLDER]]));
    caption.appendChild(el("div", null, human(member[M_SIZE]) + " \u00b7 " + member[M_W] + " \u00d7 " + member[M_H] +
      " \u00b7 " + data.formats[member[M_FORMAT]]));
    caption.appendChild(el("div", null, "modified " + day(member[M_MTIME])));
    var score = member[M_SCORE];
    if (mi === 0) {
      caption.appendChild(el("div", "kinds", "anchor: every picture here matches it"));
    } else {
      caption.appendChild(el("div", null, "score " + (score < 0 ? "not measured" : (score / 10000).toFixed(2)) + " against the anchor"));
      caption.appendChild(el("div", "kinds", kindNames(member[M_KINDS]).join(", ")));
    }
    if (mi === group[G_KEEP] && !(choice && choice.keep !== undefined)) {
      caption.appendChild(el("div", "badge", "suggested to keep: " + group[G_REASON]));
    }
    if (choice && choice.keep === mi) { caption.appendChild(el("div", "badge", "to keep (decided on this page)")); }
    if (member[M_PROTECTED]) { caption.appendChild(el("div", "badge", "never removed (kept, preferred folder or companion)")); }
    var pick = el("label", "select"), box = el("input");
    box.type = "checkbox";
    box.checked = !!(selected[gi] && selected[gi][mi]);
    box.addEventListener("change", function () {
      (selected[gi] = selected[gi] || {})[mi] = box.checked;
      if (!box.checked) { delete selected[gi][mi]; }
    });
    pick.appendChild(box);
    pick.appendChild(document.createTextNode(" select"));
    caption.appendChild(pick);
    caption.appendChild(button("Keep this one", function () { keepHere(gi, mi); }));
    figure.appendChild(caption);
    return figure;
  }
  function groupCard(gi, note) {
    var group = groups[gi], members = group[G_MEMBERS], choice = choices[gi];
    var card = el("section", "group" + (wholeGroupApart(gi) ? " apart" : ""));
    card.id = "group-" + (gi + 1);
    card.setAttribute("data-group", String(gi + 1));
    var head = el("div", "group-head");
    head.appendChild(el("h2", null, "group-" + (gi + 1)));
    head.appendChild(el("span", null, members.length + " pictures \u00b7 " + human(reclaimable(gi)) + " reclaimable"));
    if (group[G_PAGE]) {
      var link = el("a", "graph-link", "graph: why these belong together");
      link.href = data.pages[group[G_PAGE] - 1] + "#group-" + (gi + 1);
      head.appendChild(link);
    } else {
      head.appendChild(el("span", null, "(past the graph pages' limit)"));
    }
    head.appendChild(button("Not duplicates", function () { markApart(gi); }));
    if (choice) { head.appendChild(button("Undo", function () { undo(gi); })); }
    card.appendChild(head);
    var notes = [];
    if (choice) {
      choice.apart.forEach(function (set) {
        notes.push("not duplicates: " + set.map(function (mi) { return shownName(members[mi]); }).join(", "));
      });
      if (choice.keep !== undefined) { notes.push("keep: " + shownName(members[choice.keep])); }
    }
    if (note) { notes.push(note); }
    notes.forEach(function (text) { card.appendChild(el("div", "group-note", text)); });
    var row = el("div", "pictures");
    members.forEach(function (_m, mi) { row.appendChild(pictureCard(gi, mi)); });
    card.appendChild(row);
    return card;
  }
  function changed(gi, note) {
    var old = document.getElementById("group-" + (gi + 1));
    if (old) { old.replaceWith(groupCard(gi, note)); }
    updateExport();
    updateTotals();
  }

  // --- lists shown a chunk at a time ---------------------------------------------------
  function List(container, more) {
    this.container = container;
    this.more = more;
    this.order = [];
    this.shown = 0;
    var list = this;
    more.addEventListener("click", function () { list.extend(); });
    if (window.IntersectionObserver) {
      new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting; })) { list.extend(); }
      }, {rootMargin: "1200px"}).observe(more);
    }
  }
  List.prototype.reset = function (order) {
    this.order = order;
    this.shown = 0;
    this.container.textContent = "";
    this.extend();
  };
  List.prototype.extend = function () {
    if (this.more.hidden && this.shown) { return; }
    var end = Math.min(this.shown + CHUNK, this.order.length), chunk = document.createDocumentFragment();
    for (var i = this.shown; i < end; i++) { chunk.appendChild(groupCard(this.order[i])); }
    this.container.appendChild(chunk);
    this.shown = end;
    this.more.hidden = end >= this.order.length;
    this.more.textContent = "Show more groups (" + (this.order.length - end) + " left)";
  };

  // --- sort and filter -------------------------------------------------------------------
  var controls = {
    sort: document.getElementById("sort"), folder: document.getElementById("folder"),
    kind: document.getElementById("kind"), exact: document.getElementById("exact"), text: document.getElementById("text")
  };
  data.folders_shown.forEach(function (name, index) {
    var option = el("option", null, name);
    option.value = String(index);
    controls.folder.appendChild(option);
  });
  data.kinds.forEach(function (name, bit) {
    var option = el("option", null, name);
    option.value = String(bit);
    controls.kind.appendChild(option);
  });
  function weakestScore(gi) {
    var weakest = 10000;
    groups[gi][G_MEMBERS].forEach(function (m, mi) { if (mi && m[M_SCORE] >= 0 && m[M_SCORE] < weakest) { weakest = m[M_SCORE]; } });
    return weakest;
  }
  function newest(gi) {
    var latest = 0;
    groups[gi][G_MEMBERS].forEach(function (m) { if (m[M_MTIME] > latest) { latest = m[M_MTIME]; } });
    return latest;
  }
  function passes(gi, folder, kindBit, exactOnly, text) {
    var members = groups[gi][G_MEMBERS], exact = data.exact * 10000;
    if (folder >= 0 && !members.some(function (m) { return m[M_FOLDER] === folder; })) { return false; }
    if (kindBit >= 0 && !members.some(function (m) { return m[M_KINDS] & (1 << kindBit); })) { return false; }
    if (exactOnly && members.some(function (m, mi) { return mi && m[M_SCORE] >= 0 && m[M_SCORE] < exact; })) { return false; }
    if (text && !members.some(function (m) { return fullPath(m).toLowerCase().indexOf(text) >= 0; })) { return false; }
    return true;
  }
  function sortKey(name) {
    var key = name === "size" ? function (gi) { return -groups[gi][G_MEMBERS].length; }
      : name === "score" ? weakestScore
      : name === "date" ? function (gi) { return -newest(gi); }
      : function (gi) { return -reclaimable(gi); };
    var keys = new Float64Array(groups.length);
    for (var gi = 0; gi < groups.length; gi++) { keys[gi] = key(gi); }
    return keys;
  }
  var openList = new List(document.getElementById("open-groups"), document.getElementById("open-more"));
  var resolvedList = new List(document.getElementById("resolved-groups"), document.getElementById("resolved-more"));
  var resolvedBox = document.getElementById("resolved");
  function apply() {
    var folder = Number(controls.folder.value), kindBit = Number(controls.kind.value);
    var exactOnly = controls.exact.checked, text = controls.text.value.trim().toLowerCase();
    var keys = sortKey(controls.sort.value), open = [], resolved = [];
    for (var gi = 0; gi < groups.length; gi++) {
      if (passes(gi, folder, kindBit, exactOnly, text)) { (groups[gi][G_DECIDED] ? resolved : open).push(gi); }
    }
    var byKey = function (a, b) { return keys[a] - keys[b] || a - b; };  // stable: report order breaks ties
    open.sort(byKey);
    resolved.sort(byKey);
    openList.reset(open);
    if (resolvedBox.open) { resolvedList.reset(resolved); } else { resolvedList.order = resolved; resolvedList.shown = 0; resolvedList.container.textContent = ""; }
    document.getElementById("resolved-summary").textContent =
      "Resolved groups (" + resolved.length + "): a keep decision already names one of their pictures";
    document.getElementById("showing").textContent = open.length + " of " + groups.length + " groups match";
  }
  resolvedBox.addEventListener("toggle", function () {
    if (resolvedBox.open && !resolvedList.shown) { resolvedList.reset(resolvedList.order); }
  });
  ["sort", "folder", "kind", "exact"].forEach(function (name) { controls[name].addEventListener("change", apply); });
  var typing = null;
  controls.text.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(apply, 250);  // one pass over every path per pause, not per key
  });
  function updateTotals() {
    var total = 0;
    for (var gi = 0; gi < groups.length; gi++) { total += reclaimable(gi); }
    document.getElementById("totals").textContent = human(total) + " reclaimable in all " + groups.length +
      " groups, keeping one picture of each (and every picture never to be removed).";
  }

  var generated = document.querySelector('meta[name="generated"]').getAttribute("content");
  document.getElementById("generated").textContent = "Generated " + generated + ".";
  updateTotals();
  apply();
  window.duplicateReview = {exportText: exportText, commandLine: commandLine, apply: apply};  // for tests and the console
  document.body.setAttribute("data-first-render-ms", String(Math.round(performance.now())));
  document.body.setAttribute("data-review", "ready");
})();
"""
