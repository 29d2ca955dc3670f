"""The service's parts in-process: coalesced jobs, the queue worker, health-gated WATCHDOG."""

from __future__ import annotations

import threading
import time

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from daemon.backends.base import ImageInfo
from daemon.indexer import Outcome
from daemon.service.app import Coalesced, QueueWorker, Service, trigger_for
from daemon.service.notify import Notifier
from daemon.settings import IndexSettings, parse_schedule, parse_settings
from daemon.store import contents as content_store
from daemon.store import files as file_store
from daemon.store.database import open_state, read_transaction, write_transaction
from daemon.store.files import FileStat
from tests.service_helpers import NotifySocket, save_image, smooth_image, wait_for


def test_triggers_from_schedules():
    assert isinstance(trigger_for(parse_schedule("interval:15m")), IntervalTrigger)
    assert trigger_for(parse_schedule("interval:15m")).interval.total_seconds() == 900
    assert isinstance(trigger_for(parse_schedule("0 3 * * *")), CronTrigger)


@pytest.fixture
def scheduler():
    created = BackgroundScheduler()
    created.start()
    yield created
    created.shutdown(wait=True)


def test_coalesced_requests_are_merged_never_lost_never_concurrent(scheduler):
    seen: list[set] = []
    running = threading.Lock()
    overlaps = []

    def work(items):
        if not running.acquire(blocking=False):
            overlaps.append(items)
            return
        try:
            seen.append(items)
            time.sleep(0.2)
        finally:
            running.release()

    job = Coalesced("test", scheduler, work)
    job.request({1})
    time.sleep(0.05)
    for item in range(2, 30):
        job.request({item})
    wait_for(lambda: job.idle.is_set() and seen, what="the work to finish")
    assert not overlaps
    assert set().union(*seen) == set(range(1, 30))
    assert len(seen) <= 3


def test_coalesced_survives_a_failing_run(scheduler, caplog):
    calls = []

    def work(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("boom")

    job = Coalesced("flaky", scheduler, work)
    job.request({"a"})
    wait_for(lambda: job.idle.is_set() and calls, what="the first run")
    job.request({"b"})
    wait_for(lambda: len(calls) == 2 and job.idle.is_set(), what="the second run")
    assert "flaky failed" in caplog.text


# The queue worker on a real state ----------------------------------------------------------------------


class FakeIndexer:
    """Marks each file indexed after a short while; remembers who ran what, at once."""

    def __init__(self, engine, delay=0.05, fail_paths=()):
        self.engine = engine
        self.settings = IndexSettings(max_attempts=2, retry_base_seconds=30)
        self.delay = delay
        self.fail_paths = set(fail_paths)
        self.processed: list[str] = []
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    def process(self, job):
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.processed.append(job.path)
        try:
            time.sleep(self.delay)
            if job.path in self.fail_paths:
                raise RuntimeError("a bug")
            digest = f"{job.id:064x}"
            with write_transaction(self.engine) as connection:
                content_store.record_content(connection, digest, ImageInfo(1, 1, "PNG"), time.time())
                file_store.mark_indexed(connection, job, digest, job.stat, time.time())
            return Outcome.ANALYSED
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def engine(tmp_path):
    created = open_state(tmp_path / "state.db")
    yield created
    created.dispose()


def add_pending(engine, count, prefix="/photos/p"):
    with write_transaction(engine) as connection:
        for index in range(count):
            file_store.mark_seen(connection, f"{prefix}{index}.jpg", FileStat(1, 1, index, 1), time.time())


def states(engine) -> dict[str, int]:
    with read_transaction(engine) as connection:
        return file_store.counts_by_state(connection)


def test_every_pending_file_is_processed_once_within_capacity(engine):
    add_pending(engine, 40)
    indexer = FakeIndexer(engine, delay=0.02)
    outcomes = []
    worker = QueueWorker(engine, indexer, 3, lambda job, outcome: outcomes.append(outcome))
    worker.start()
    try:
        wait_for(lambda: states(engine)["indexed"] == 40, what="40 indexed")
        assert sorted(indexer.processed) == sorted(f"/photos/p{i}.jpg" for i in range(40))
        assert indexer.most_active <= 3
        assert outcomes.count(Outcome.ANALYSED) == 40
        # New work wakes it up.
        add_pending(engine, 5, prefix="/photos/late")
        worker.wake()
        wait_for(lambda: states(engine)["indexed"] == 45, what="the late files")
    finally:
        assert worker.stop(time.monotonic() + 5)


def test_stop_finishes_in_flight_and_leaves_the_rest_pending(engine):
    add_pending(engine, 30)
    indexer = FakeIndexer(engine, delay=0.3)
    worker = QueueWorker(engine, indexer, 2, lambda job, outcome: None)
    worker.start()
    wait_for(lambda: indexer.processed, what="a start")
    assert worker.stop(time.monotonic() + 5)
    counts = states(engine)
    assert counts["indexed"] == len(indexer.processed)
    assert counts["pending"] == 30 - len(indexer.processed) > 0


def test_an_unexpected_error_is_retried_later_then_failed(engine, caplog):
    add_pending(engine, 1, prefix="/photos/buggy")
    indexer = FakeIndexer(engine, fail_paths={"/photos/buggy0.jpg"})
    worker = QueueWorker(engine, indexer, 1, lambda job, outcome: None)
    worker.start()
    try:
        wait_for(lambda: indexer.processed, what="the attempt")
        time.sleep(0.3)
        assert indexer.processed == ["/photos/buggy0.jpg"]  # deferred, not spinning
        with read_transaction(engine) as connection:
            row = file_store.get_by_path(connection, "/photos/buggy0.jpg")
        assert row.state == "pending" and row.attempts == 1
        with write_transaction(engine) as connection:  # time passes
            connection.exec_driver_sql("update files set next_attempt_at = 0")
        worker.wake()
        wait_for(lambda: states(engine)["failed"] == 1, what="failed after the last attempt")
        assert "indexing /photos/buggy0.jpg failed unexpectedly" in caplog.text
    finally:
        worker.stop(time.monotonic() + 5)


# The whole service in-process ------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_watchdog_pings_only_while_every_part_is_alive(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    settings = parse_settings(
        {
            "paths": {"state": "state/state.db", "reports": "reports"},
            "watch": [{"path": "photos"}],
            "index": {"stable_seconds": 0.2, "workers": 1},
            "scan": {"debounce_seconds": 0.2},
        },
        base_dir=tmp_path,
        source=None,
    )
    listener = NotifySocket(tmp_path)
    notifier = Notifier(listener.address, watchdog_usec=400_000)  # a ping every 0.2 s
    service = Service(settings, notifier)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        listener.wait_for("READY", "1")
        listener.wait_for("WATCHDOG", "1", count=3, timeout=10)
        # The work goes on: a duplicate reaches the reports.
        save_image(smooth_image(1), photos / "a.png")
        save_image(smooth_image(1), photos / "b.jpg", quality=90)
        wait_for(lambda: (tmp_path / "reports" / "duplicates.json").exists()
                 and "b.jpg" in (tmp_path / "reports" / "duplicates.json").read_text(), timeout=30, what="the report")

        # The database stops answering: no more pings, and the problem is in the status file.
        def broken(raise_errors=False):
            if raise_errors:
                raise RuntimeError("disk I/O error")
            return {}

        monkeypatch.setattr(service, "_counts", broken)
        time.sleep(0.5)  # a heartbeat may have been on its way
        before = len(listener.with_key("WATCHDOG"))
        time.sleep(1.0)
        assert len(listener.with_key("WATCHDOG")) == before
        assert "state database does not answer" in (tmp_path / "state" / "service-status.json").read_text()

        # It answers again: pings resume.
        monkeypatch.undo()
        listener.wait_for("WATCHDOG", "1", count=before + 2, timeout=10)
    finally:
        service.stop()
        thread.join(30)
        listener.close()
    assert not thread.is_alive()
    assert listener.with_key("STOPPING", "1")
