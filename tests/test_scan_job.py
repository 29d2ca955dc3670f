"""The service's scan job and ``dupe-scanner scan`` ask one question before they scan: did
anything that shapes the reports change since the last successful scan?"""

import time
from typing import cast

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from dupe_scanner.backends.base import Backend
from dupe_scanner.scanning import reports_current, scan_inputs
from dupe_scanner.service.notify import Notifier
from dupe_scanner.service.scan_job import ScanJob
from dupe_scanner.settings import load_settings
from dupe_scanner.store import contents as content_store
from dupe_scanner.store.database import open_state, read_transaction
from tests.cli import write_settings


class NoPairs:
    """A backend with nothing to compare."""

    comparison = "none-1"
    compares_every_pair = False

    def forget(self, contents) -> None:
        pass

    def commit(self) -> None:
        pass

    def find_pairs(self, changed, floor, progress=None, pending=None):
        return iter(())


def scans(engine) -> int:
    with read_transaction(engine) as connection:
        last = content_store.last_scan(connection)
    return last.id if last else 0


@pytest.fixture
def scheduler():
    scheduler = BackgroundScheduler()
    scheduler.start()
    yield scheduler
    scheduler.shutdown()


def test_the_service_skips_what_the_command_line_would_skip_and_scans_when_a_watch_changes(tmp_path, scheduler):
    settings = load_settings(write_settings(tmp_path))
    engine = open_state(settings.paths.state)
    current = {"settings": settings}
    backend = cast(Backend, NoPairs())  # a scan asks a backend only what NoPairs answers
    job = ScanJob(engine, backend, lambda: current["settings"], scheduler, Notifier(None), time.time)

    def scan(reason: str) -> None:
        job.request({reason})
        assert job.runs.idle.wait(30)

    scan("start")
    assert scans(engine) == 1 and (settings.paths.reports / "duplicates.json").exists()
    scan("schedule")
    assert scans(engine) == 1  # nothing changed: not run
    with read_transaction(engine) as connection:  # what `dupe-scanner scan` asks, with the same settings
        inputs = scan_inputs(connection, settings.scan.threshold, settings.paths.reports, settings.report, settings.keep, [])
        assert reports_current(connection, inputs, settings.paths.reports, NoPairs.comparison) is not None
        assert reports_current(connection, inputs, settings.paths.reports, "another-comparison") is None

    (tmp_path / "photos").mkdir()
    current["settings"] = load_settings(write_settings(tmp_path, '[[watch]]\npath = "photos"\n'))
    job.settings_changed()
    assert job.runs.idle.wait(30)
    assert scans(engine) == 2  # the review page shows paths relative to the watched folders
    scan("schedule")
    assert scans(engine) == 2
