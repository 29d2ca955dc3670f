"""The real service and commands on the faults of issue 12: each test fails without its fix.

Real folders, a real SQLite state, ``python -m dupe_scanner`` as a subprocess.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dupe_scanner.analysis.features import ANALYSER
from dupe_scanner.service.processes import descendants, kill_all
from tests.cli import run_cli
from tests.photos import make_photo, save
from tests.service_helpers import FAST, REPO, ServiceProcess, query, read_groups, save_image, settings_text, smooth_image, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the service targets Linux")


def photos_with_a_copy(folder: Path, seed: int = 5) -> list[Path]:
    original = save(make_photo(seed, (200, 150)), folder / "photo.jpg")
    copy = Path(shutil.copyfile(original, folder / "photo-copy.jpg"))
    return [original, copy, save(make_photo(seed + 1, (200, 150)), folder / "other.jpg")]


def service_on(folder: Path, timings: str = FAST, arguments: tuple[str, ...] = ()) -> ServiceProcess:
    """A service watching ``folder/photos``, by default with the e2e tests' quick timings."""
    config = folder / "settings.toml"
    config.write_text(settings_text(["photos"], timings))
    return ServiceProcess(folder, config, arguments=arguments)


@pytest.fixture
def service(tmp_path):
    """A service (not started yet) watching a photo, its copy and another photo."""
    photos_with_a_copy(tmp_path / "photos")
    service = service_on(tmp_path)
    yield service
    service.close()


@pytest.mark.timeout(120)
def test_the_service_analyses_again_what_an_older_analyser_analysed(service, tmp_path):
    indexed = run_cli("index", "--dir", str(tmp_path / "photos"), config=service.config, timeout=60)
    assert indexed.returncode == 0, indexed.stderr
    with_analyser = "select count(*) from features where analyser = ?"
    contents = query(service.state, with_analyser, ANALYSER)[0][0]
    assert contents == 2
    connection = sqlite3.connect(service.state)
    with connection:
        connection.execute("update features set analyser = 'embedded-older'")
    connection.close()
    service.start()
    wait_for(lambda: query(service.state, with_analyser, ANALYSER)[0][0] == contents, timeout=30,
             what="the older analyses to be redone")
    assert query(service.state, "select count(*) from features where analyser != ?", ANALYSER)[0][0] == 0


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
def test_a_second_service_on_the_same_state_refuses_in_one_line_naming_the_first(service):
    service.start()
    second = run_cli("run", config=service.config, timeout=30)
    assert second.returncode == 1
    assert second.stderr.count("\n") == 1, second.stderr
    assert str(service.state) in second.stderr and f"dupe-scanner run (pid {service.process.pid})" in second.stderr
    assert service.alive()

    service.kill()
    service.start()  # killed, it left no lock behind


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_all_ended(pids: list[int]) -> None:
    try:
        wait_for(lambda: not [pid for pid in pids if running(pid)], timeout=15, what=f"processes {pids} to end")
    finally:
        kill_all(pids)  # never leave them behind, even when the test fails


def analysis_processes(pid: int) -> list[int]:
    """Every process below ``pid`` once an analysis worker (a child of the fork server) is there."""

    def with_a_worker() -> list[int]:
        below = descendants(pid)
        return below if set(below) - set(children(pid)) else []

    return wait_for(with_a_worker, timeout=60, what="an analysis worker")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


@pytest.mark.timeout(120)
def test_analysis_workers_end_when_the_service_is_killed(service):
    service.start()
    wait_for(lambda: read_groups(service.reports), timeout=60, what="the first reports")
    below = analysis_processes(service.process.pid)
    service.process.kill()  # the main process only, as outside systemd
    service.process.wait(10)
    wait_all_ended(below)


@pytest.mark.timeout(120)
def test_sigterm_of_a_one_shot_index_ends_it_and_its_workers(tmp_path):
    for seed in range(30):
        save_image(smooth_image(100 + seed, (1600, 1200)), tmp_path / "photos" / f"{seed}.jpg", quality=90)
    config = service_on(tmp_path).config
    command = [sys.executable, "-m", "dupe_scanner", "index", "--dir", str(tmp_path / "photos"), "--config", str(config)]
    index = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        below = analysis_processes(index.pid)
        index.send_signal(signal.SIGTERM)
        _, errors = index.communicate(timeout=30)
        assert index.returncode == 130
        assert errors.strip().splitlines() == ["dupe-scanner: interrupted; pending work is kept and resumes next time"]
        wait_all_ended(below)
        pending = query(tmp_path / "state" / "state.db", "select count(*) from files where state = 'pending'")[0][0]
        assert pending > 0, "the index finished before SIGTERM: give it more images"
    finally:
        if index.poll() is None:
            index.kill()


def lock_lines(log: str) -> list[str]:
    """The lines about the lock: ours, or SQLite's own words in a traceback."""
    return [line for line in log.splitlines() if "locked by another process" in line or "database is locked" in line]


@pytest.fixture
def impatient_service(tmp_path):
    """The ``service`` fixture's, waiting 2 s for a locked state instead of 30."""
    photos_with_a_copy(tmp_path / "photos")
    service = service_on(tmp_path, arguments=("--lock-wait", "2"))
    yield service
    service.close()


@pytest.mark.timeout(180)
def test_a_state_locked_by_another_program_is_one_line_in_the_log_and_nothing_is_lost(impatient_service, tmp_path):
    service = impatient_service
    service.start()
    wait_for(lambda: read_groups(service.reports), timeout=60, what="the first reports")
    locker = sqlite3.connect(service.state, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        locker.execute("UPDATE meta SET value = value")
        added = save_image(smooth_image(77), tmp_path / "photos" / "added.png")
        wait_for(lambda: lock_lines(service.log()), timeout=90, interval=0.5,
                 what="the service to give up waiting for the lock")
    finally:
        locker.rollback()
        locker.close()
    indexed = "select count(*) from files where path = ? and state = 'indexed'"
    wait_for(lambda: query(service.state, indexed, str(added))[0][0] == 1, timeout=90, what="the added file indexed")
    assert "Traceback" not in service.log()
    locked = lock_lines(service.log())
    assert all("locked by another process for 2 s" in line and str(service.state) in line for line in locked), locked


@pytest.mark.timeout(120)
def test_the_status_line_says_how_the_scan_goes(service):
    service.start()
    wait_for(lambda: read_groups(service.reports), timeout=60, what="the first reports")
    said = [message["STATUS"] for message in service.notify.with_key("STATUS")]
    for stage in ("forgetting deleted images", "comparing images", "forming groups", "writing reports"):
        assert any(f"scan: {stage}: 0 of 1" in line for line in said), said


# The real command line, its comparison made two pictures at a time, so that a few photos
# make several parts (a part is 5,000 pictures).
SCAN_IN_PARTS_OF_TWO = "import sys, dupe_scanner.scanning as s; s.COMPARISON_PART = 2; from dupe_scanner.cli import main; sys.exit(main())"


def library_of_copies(photos: Path, seeds: range) -> None:
    for seed in seeds:
        photo = make_photo(seed, (240, 180))
        save(photo, photos / f"photo-{seed}.jpg")
        save(photo.resize((120, 90)), photos / f"photo-{seed}-small.png")


def settings_for(folder: Path, photos: Path) -> Path:
    folder.mkdir()
    config = folder / "settings.toml"
    config.write_text(f'[paths]\nstate = "state/state.db"\nreports = "reports"\n[[watch]]\npath = "{photos}"\n')
    return config


def scan_killed_once_it_says(words: str, code: str, config: Path) -> None:
    """Run ``scan`` through ``code`` (a ``python -c`` that calls the command line) and SIGKILL
    it, as a power cut or the OOM killer would, as soon as its log says ``words``."""
    command = [sys.executable, "-c", code, "--config", str(config), "--log-level", "info", "scan"]
    scan = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert scan.stderr is not None
        for line in scan.stderr:
            if words in line:
                scan.send_signal(signal.SIGKILL)
                break
        assert scan.wait(timeout=60) == -signal.SIGKILL, f"the scan ended without saying {words!r}"
    finally:
        if scan.poll() is None:
            scan.kill()


@pytest.mark.timeout(300)
def test_a_scan_killed_after_a_part_goes_on_from_the_next_and_ends_as_one_never_killed(tmp_path):
    photos = tmp_path / "photos"
    library_of_copies(photos, range(20, 23))  # six pictures: three parts
    killed, never_killed = settings_for(tmp_path / "killed", photos), settings_for(tmp_path / "never-killed", photos)
    assert run_cli("index", "--dir", str(photos), config=killed).returncode == 0
    # The same state for both: which of two pictures counts as the newer follows the order
    # the workers finished them in, and a rejected pair's score the side that asked.
    shutil.copytree(tmp_path / "killed" / "state", tmp_path / "never-killed" / "state")

    scan_killed_once_it_says("compared 2 of 6 pictures; their pairs are stored", SCAN_IN_PARTS_OF_TWO, killed)

    said = run_cli("status", config=killed).stdout
    assert "comparison: 4 of 6 contents not compared yet" in said or "comparison: 2 of 6 contents not compared yet" in said
    resumed = run_cli("--log-level", "info", "scan", config=killed)
    assert "not compared yet" not in run_cli("status", config=killed).stdout
    assert resumed.returncode == 0
    assert "compared 4 new" in resumed.stderr or "compared 2 new" in resumed.stderr  # not all six again
    assert run_cli("scan", config=never_killed).returncode == 0
    assert read_groups(tmp_path / "killed" / "reports") == read_groups(tmp_path / "never-killed" / "reports")
    assert len(read_groups(tmp_path / "killed" / "reports")) == 3
    pairs = "select first, second, round(score, 6) from pairs order by first, second"
    assert query(tmp_path / "killed" / "state" / "state.db", pairs) == query(tmp_path / "never-killed" / "state" / "state.db", pairs)


SCAN_IN_PARTS_OF_TWO_REPORTING_BETWEEN = (
    "import sys, dupe_scanner.scanning as s; s.COMPARISON_PART = 2; s.INTERIM_REPORT_SECONDS = 0; s.INTERIM_REPORT_SHARE = 1e9; "
    "from dupe_scanner.cli import main; sys.exit(main())"
)


@pytest.mark.timeout(300)
def test_a_long_scan_writes_the_reports_between_its_parts_and_says_they_are_not_complete(tmp_path):
    photos = tmp_path / "photos"
    library_of_copies(photos, range(30, 33))  # six pictures: three parts
    config = settings_for(tmp_path / "scanned", photos)
    reports = tmp_path / "scanned" / "reports"
    assert run_cli("index", "--dir", str(photos), config=config).returncode == 0

    scan_killed_once_it_says("reports written with 4 of the 6 pictures compared", SCAN_IN_PARTS_OF_TWO_REPORTING_BETWEEN, config)

    details = json.loads((reports / "duplicates.details.json").read_text())
    assert details["complete"] is False and details["comparison"] == {"compared": 4, "pictures": 6}
    assert "4 of the 6 pictures are compared" in (reports / "duplicates.html").read_text()
    assert 1 <= len(read_groups(reports)) <= 2  # what the first four found: not the third group yet

    assert run_cli("scan", config=config).returncode == 0
    details = json.loads((reports / "duplicates.details.json").read_text())
    assert details["complete"] is True and "comparison" not in details
    assert len(read_groups(reports)) == 3

