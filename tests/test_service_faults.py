"""The real service and commands on the faults of issue 12: each test fails without its fix.

Real folders, a real SQLite state, ``python -m daemon`` as a subprocess.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from daemon.analysis.features import ANALYSER
from tests.cli import run_cli
from tests.photos import make_photo, save
from tests.service_helpers import ServiceProcess, query, read_groups, wait_for
from tests.test_service_e2e import FAST, settings_text

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the service targets Linux")


def photos_with_a_copy(folder: Path, seed: int = 5) -> list[Path]:
    original = save(make_photo(seed, (200, 150)), folder / "photo.jpg")
    copy = Path(shutil.copyfile(original, folder / "photo-copy.jpg"))
    return [original, copy, save(make_photo(seed + 1, (200, 150)), folder / "other.jpg")]


def service_on(folder: Path, timings: str = FAST) -> ServiceProcess:
    """A service watching ``folder/photos``, by default with the e2e tests' quick timings."""
    config = folder / "settings.toml"
    config.write_text(settings_text(["photos"], timings))
    service = ServiceProcess(folder, config)
    service.state = folder / "state" / "state.db"
    service.reports = folder / "reports"
    return service


@pytest.mark.timeout(120)
def test_the_service_analyses_again_what_an_older_analyser_analysed(tmp_path):
    photos_with_a_copy(tmp_path / "photos")
    service = service_on(tmp_path)
    indexed = run_cli("index", "--dir", str(tmp_path / "photos"), config=service.config, timeout=60)
    assert indexed.returncode == 0, indexed.stderr
    with_analyser = "select count(*) from features where analyser = ?"
    contents = query(service.state, with_analyser, ANALYSER)[0][0]
    assert contents == 2
    connection = sqlite3.connect(service.state)
    with connection:
        connection.execute("update features set analyser = 'embedded-older'")
    connection.close()
    try:
        service.start()
        wait_for(lambda: query(service.state, with_analyser, ANALYSER)[0][0] == contents, timeout=30,
                 what="the older analyses to be redone")
        assert query(service.state, "select count(*) from features where analyser != ?", ANALYSER)[0][0] == 0
    finally:
        service.close()


def folder_in_place_of(report: Path) -> bool:
    """No report can replace a folder: the scans after this fail to write. False when a
    scan still running wrote the report again meanwhile."""
    report.unlink(missing_ok=True)
    try:
        report.mkdir()
    except FileExistsError:
        return False
    return True


@pytest.mark.timeout(120)
def test_reports_a_failed_scan_could_not_write_are_written_at_the_next_scheduled_scan(tmp_path):
    original, copy, _other = photos_with_a_copy(tmp_path / "photos")
    service = service_on(tmp_path, FAST.replace("interval:1h", "interval:2s"))
    html = service.reports / "duplicates.html"
    try:
        service.start()
        wait_for(lambda: len(read_groups(service.reports)) == 1 and html.is_file(), timeout=60, what="the first reports")
        wait_for(lambda: folder_in_place_of(html), what="a folder where the HTML report goes")
        third = Path(shutil.copyfile(original, tmp_path / "photos" / "photo-third.jpg"))
        failed = "select count(*) from scans where error is not null"
        wait_for(lambda: query(service.state, failed)[0][0] > 0, timeout=60, what="a scan that failed to write")

        html.rmdir()  # mended; no file changes from here on
        everything = [sorted(map(str, (original, copy, third)))]
        wait_for(lambda: read_groups(service.reports) == everything and html.is_file(),
                 timeout=30, what="a scheduled scan to write the reports")
    finally:
        service.close()


@pytest.mark.timeout(120)
def test_a_second_service_on_the_same_state_refuses_in_one_line_naming_the_first(tmp_path):
    photos_with_a_copy(tmp_path / "photos")
    first = service_on(tmp_path)
    try:
        first.start()
        second = run_cli("run", config=first.config, timeout=30)
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1, second.stderr
        assert str(first.state) in second.stderr and f"dupe-scanner run (pid {first.process.pid})" in second.stderr
        assert first.alive()

        first.kill()
        first.start()  # killed, it left no lock behind
    finally:
        first.close()
