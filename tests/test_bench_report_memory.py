"""bench.report_memory: a scanned state's reports written from scratch, in glibc's arenas and in one."""

from __future__ import annotations

import subprocess
import sys

from tests.cli import REPO, call_main, write_settings
from tests.photos import make_photo, save


def test_both_ways_write_the_same_group_from_a_scanned_state(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    original = save(make_photo(7), library / "original.jpg")
    save(make_photo(7).resize((320, 240)), library / "smaller copy.png")
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(library), config=settings).returncode == 0
    assert call_main("scan", config=settings).returncode == 0

    printed = subprocess.run(
        [sys.executable, "-m", "bench.report_memory", "--state", str(tmp_path / "state" / "state.db"), "--runs", "1"],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout

    rows = [line.split(" | ") for line in printed.splitlines()[2:]]
    assert [row[0] for row in rows] == ["| glibc's default", "| one arena"]
    # one group of two pictures, each with a thumbnail on the graph page and one on the review page
    assert all(row[1:4] == ["1", "2", "4"] for row in rows), printed
    assert original.exists()
