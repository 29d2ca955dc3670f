"""The review page at scale: load time and browser memory for N groups, in headless Chromium.

Builds N groups of real files as ``report_scale`` does (a few hundred small JPEGs
hard-linked under many names, each file its own content), writes the reports through
the real ``write_reports``, then opens ``review.html`` from disk in headless Chromium
with a small script added to a copy of the page (beside it, so the thumbnails resolve)
that times, after the first render, a sort, a filter, a path search and ten "show more"
chunks, and reads the JS heap. Meanwhile the peak RSS of all Chromium processes is
sampled with psutil, as the other benches do.

The Ns run in one folder, smallest first, so a bigger N reuses the smaller one's files
and thumbnails: "decoded" counts only the new ones (``report_scale`` measures writing).

    .venv/bin/python bench/review_page.py [--groups 1000 10000 100000] [--keep DIR]

Columns: groups, pictures, page MB, thumbnail files and MB; seconds to write all the
reports (decoding only new thumbnails), the thumbnails decoded, the writer's peak RSS;
the same for a rewrite with nothing changed (what every later scan pays); first render
(ms from navigation start to the first groups in the DOM: reading the page, parsing its
data, drawing 40 groups), sort, filter and search (ms, over every group), one more chunk
of 40 groups (ms, mean of ten), the load event (ms: the thumbnails in view loaded), JS
heap after all that (MB), peak memory of all Chromium processes (MB: summed RSS as the
other benches, and summed PSS, which counts shared pages once) and the browser's wall
time (which includes writing out the whole DOM, the page's data with it).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report_scale import T0, _peak_mb, _reset_peak, make_groups, make_pool
from bench.report_scale import print_table as print_markdown_table
from dupe_scanner.keep import review_group
from dupe_scanner.reports import write_reports
from dupe_scanner.settings import KeepSettings, ReportSettings

MB = 1024 * 1024
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome") or ""  # "": none

# Runs right after the page's own script (the first render is done), then reports.
PROBE = """
(function () {
  "use strict";
  var result = {first_render_ms: Number(document.body.getAttribute("data-first-render-ms"))};
  function timed(name, action) { var t = performance.now(); action(); result[name] = performance.now() - t; }
  function choose(id, value) { var c = document.getElementById(id); c.value = value; c.dispatchEvent(new Event("change")); }
  timed("sort_ms", function () { choose("sort", "score"); });
  timed("filter_ms", function () { choose("kind", "4"); });
  choose("kind", "-1");
  timed("search_ms", function () { document.getElementById("text").value = "img_000123_"; window.duplicateReview.apply(); });
  document.getElementById("text").value = "";
  choose("sort", "reclaimable");
  var more = document.getElementById("open-more"), t = performance.now(), chunks = 0;
  for (; chunks < 10 && !more.hidden; chunks++) { more.click(); }
  result.chunk_ms = chunks ? (performance.now() - t) / chunks : null;
  result.groups_in_dom = document.querySelectorAll("section.group").length;
  result.heap_mb = performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null;
  window.addEventListener("load", function () {  // the thumbnails in view are loaded by then
    result.load_ms = performance.now();
    var out = document.createElement("pre");
    out.id = "probe-result";
    out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  });
})();
"""


def measure(count: int, root: Path) -> dict:
    pool = make_pool(root / "pool")
    # Reviewed as a scan does (keep rules, no decisions), so no report works that out again.
    groups = [replace(group, review=review_group(group.members, KeepSettings())) for group in make_groups(root, pool, count)]
    reports = root / "reports"
    row: dict[str, Any] = {"groups": count, "files": sum(len(group.members) for group in groups)}
    for name, moment in (("write", T0), ("rewrite", T0.replace(hour=13))):  # the rewrite: nothing changed
        _reset_peak()
        started = time.perf_counter()
        outcome = write_reports(
            groups, reports, ReportSettings(), 0.6, generated_at=moment,
            thumbnail_cache=root / "state" / ".thumbnails", watched_folders=[root / "library"],
        )
        row[f"{name}_s"] = time.perf_counter() - started
        row[f"{name}_peak_mb"] = _peak_mb()
        row.setdefault("decoded", outcome.review_thumbnails_decoded)
    row["page_mb"] = (reports / "review.html").stat().st_size / MB
    thumbnails = list((reports / "thumbnails").rglob("*.jpg"))
    row["thumbnails"] = len(thumbnails)
    row["thumbnails_mb"] = sum(path.stat().st_size for path in thumbnails) / MB
    del groups, outcome
    row.update(open_in_chromium(reports, root / "profile"))
    return row


def open_in_chromium(reports: Path, profile: Path) -> dict:
    page = reports / "review-probe.html"
    text = (reports / "review.html").read_text(encoding="utf-8")
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)  # lets the probe run
    page.write_text(text.replace("</body>", f"<script>{PROBE}</script></body>"), encoding="utf-8")
    shutil.rmtree(profile, ignore_errors=True)
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-dev-shm-usage", "--disable-extensions", "--enable-precise-memory-info", f"--user-data-dir={profile}",
        "--window-size=1200,900", "--dump-dom", page.as_uri(),
    ]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as dom, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=dom, stderr=errors, stdin=subprocess.DEVNULL)
        peak, peak_pss = _peak_memory_while_running(process)
        wall = time.perf_counter() - started
        dom.seek(0)
        found = re.search(rb'<pre id="probe-result">(.*?)</pre>', dom.read(), re.S)
        if process.returncode != 0 or not found:
            errors.seek(0)
            raise RuntimeError(f"Chromium: exit {process.returncode}, no probe result: {errors.read()[-2000:]!r}")
    page.unlink()
    return {**json.loads(html.unescape(found.group(1).decode("utf-8"))), "browser_peak_mb": peak / MB,
            "browser_peak_pss_mb": peak_pss / MB, "browser_s": wall}


def _peak_memory_while_running(process: subprocess.Popen) -> tuple[int, int]:
    """The highest summed RSS, and PSS, of ``process`` and all its children, sampled every 50 ms.

    Summed RSS counts the pages Chromium's processes share once per process (the other
    benches' measure, kept for comparison); PSS shares them out, so its sum is the
    memory the browser really holds.
    """
    watched = psutil.Process(process.pid)
    peak = peak_pss = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_pss
        while not stop.is_set():
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(_rss(p) for p in tree))
                peak_pss = max(peak_pss, sum(_pss(p) for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    process.wait(timeout=900)
    stop.set()
    sampler.join()
    return peak, peak_pss


def _pss(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss
    except (psutil.Error, AttributeError):
        return 0


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


COLUMNS = (
    ("groups", "groups", "{:,}"),
    ("pictures", "files", "{:,}"),
    ("page MB", "page_mb", "{:.1f}"),
    ("thumbnails", "thumbnails", "{:,}"),
    ("thumbnails MB", "thumbnails_mb", "{:.0f}"),
    ("write s", "write_s", "{:.0f}"),
    ("decoded", "decoded", "{:,}"),
    ("write peak RSS MB", "write_peak_mb", "{:.0f}"),
    ("rewrite s", "rewrite_s", "{:.1f}"),
    ("rewrite peak RSS MB", "rewrite_peak_mb", "{:.0f}"),
    ("first render ms", "first_render_ms", "{:.0f}"),
    ("sort ms", "sort_ms", "{:.0f}"),
    ("filter ms", "filter_ms", "{:.0f}"),
    ("search ms", "search_ms", "{:.0f}"),
    ("+40 groups ms", "chunk_ms", "{:.0f}"),
    ("load ms", "load_ms", "{:.0f}"),
    ("JS heap MB", "heap_mb", "{:.0f}"),
    ("Chromium peak RSS MB (summed)", "browser_peak_mb", "{:.0f}"),
    ("Chromium peak PSS MB", "browser_peak_pss_mb", "{:.0f}"),
    ("browser s", "browser_s", "{:.1f}"),
)


def print_table(rows: list[dict]) -> None:
    print_markdown_table(rows, COLUMNS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--keep", type=Path, help="build the library here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    if not CHROMIUM:
        print("Chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    root = args.keep or Path(tempfile.mkdtemp(prefix="review-page-"))
    rows = []
    try:
        for count in sorted(args.groups):
            rows.append(measure(count, root))
            print(f"measured {count:,} groups: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
