"""The service's parts in-process: coalesced jobs, the queue worker, health-gated WATCHDOG."""

from __future__ import annotations

import threading
import time

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dupe_scanner.backends.flow import FlowBackend
from dupe_scanner.indexer import Indexer, Outcome
from dupe_scanner.pathfilter import PathFilter
from dupe_scanner.reconcile import reconcile
from dupe_scanner.service.app import Service
from dupe_scanner.service.jobs import Coalesced, trigger_for
from dupe_scanner.service.notify import Notifier
from dupe_scanner.service.queue_worker import QueueWorker
from dupe_scanner.service.status import StateCounts
from dupe_scanner.settings import IndexSettings, parse_schedule, parse_settings
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import open_state, read_transaction, write_transaction
from tests.flow_standin.fixtures import standin_settings
from tests.photos import make_photo, save
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


# The queue worker on a real state, with the real indexer and Flow backend on the stand-in ------------


@pytest.fixture
def engine(tmp_path):
    created = open_state(tmp_path / "state.db")
    yield created
    created.dispose()


@pytest.fixture
def indexer(engine, flow_standin):
    backend = FlowBackend(standin_settings(flow_standin), "balanced", backoff_seconds=0.01)
    yield Indexer(engine, backend, IndexSettings(workers=1, max_attempts=2, retry_base_seconds=30))
    backend.close()


def add_photos(engine, folder, count, prefix="p", first_seed=0) -> list[str]:
    """``count`` distinct small photos in ``folder``, registered as pending by a reconcile walk."""
    paths = [
        save(make_photo(first_seed + index, (96, 72)), folder / f"{prefix}{index}.jpg", quality=90)
        for index in range(count)
    ]
    reconcile(engine, PathFilter(folder))
    return [str(path) for path in paths]


def states(engine) -> dict[str, int]:
    with read_transaction(engine) as connection:
        return file_store.counts_by_state(connection)


def uploaded(standin) -> list[str]:
    """The paths of the docs the stand-in was sent, one per analysed file, in arrival order."""
    return [request.json["image"] for request in standin.requests_to("update")]


class AtTheServer:
    """Samples how many files are between their analyze request and their update at the stand-in.

    Each file the indexer analyses sends one analyze, then one update; the difference of the
    two counts is how many files are being analysed at once.
    """

    def __init__(self, standin):
        self.standin = standin
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.is_set():
            counts = self.standin.counts
            self.most = max(self.most, counts["analyze"] - counts["update"])
            time.sleep(0.002)

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def test_every_pending_file_is_processed_once_within_capacity(engine, indexer, flow_standin, tmp_path):
    folder = tmp_path / "photos"
    paths = add_photos(engine, folder, 40)
    flow_standin.slow(0.05, endpoint="analyze")  # each analysis takes a while: files overlap
    outcomes = []
    worker = QueueWorker(engine, indexer, 3, lambda job, outcome: outcomes.append(outcome))
    sampler = AtTheServer(flow_standin)
    worker.start()
    try:
        wait_for(lambda: states(engine)["indexed"] == 40, what="40 indexed")
        sampler.stop()
        assert sorted(uploaded(flow_standin)) == sorted(paths)
        assert flow_standin.counts["analyze"] == 40
        assert sampler.most == 3  # the capacity is used, never exceeded
        assert outcomes.count(Outcome.ANALYSED) == 40
        # New work wakes it up.
        late = add_photos(engine, folder, 5, prefix="late", first_seed=100)
        worker.wake()
        wait_for(lambda: states(engine)["indexed"] == 45, what="the late files")
        assert sorted(uploaded(flow_standin)) == sorted(paths + late)
    finally:
        sampler.stop()
        assert worker.stop(time.monotonic() + 5)


def test_stop_finishes_in_flight_and_leaves_the_rest_pending(engine, indexer, flow_standin, tmp_path):
    add_photos(engine, tmp_path / "photos", 30)
    flow_standin.slow(0.3, endpoint="analyze")
    worker = QueueWorker(engine, indexer, 2, lambda job, outcome: None)
    worker.start()
    wait_for(lambda: flow_standin.counts["analyze"], interval=0.01, what="a start")
    assert worker.stop(time.monotonic() + 5)
    started = flow_standin.counts["analyze"]
    counts = states(engine)
    assert len(uploaded(flow_standin)) == started  # every analysis under way was finished
    assert counts["indexed"] == started
    assert counts["pending"] == 30 - started > 0


def test_a_restart_racing_the_stop_leaves_the_worker_stopped(engine, indexer, monkeypatch):
    """The heartbeat restarts a queue worker whose thread it finds gone; during the service's
    stop that is every time, and on a loaded machine a thread takes a while to start."""
    from dupe_scanner.service import queue_worker

    made = []

    class SlowToStart(threading.Thread):
        def start(self):
            made.append(self)
            time.sleep(0.05)
            super().start()

    monkeypatch.setattr(queue_worker.threading, "Thread", SlowToStart)
    worker = QueueWorker(engine, indexer, 1, lambda job, outcome: None)  # its thread not alive, as if it had died
    heartbeat = threading.Thread(target=worker.start)
    heartbeat.start()
    wait_for(lambda: made, interval=0.001, what="the restart under way")
    assert worker.stop(time.monotonic() + 5)
    heartbeat.join()
    made.clear()
    worker.start()  # after the stop: nothing starts
    assert not made and not worker.alive()


def test_an_unexpected_error_is_retried_later_then_failed(engine, indexer, tmp_path, caplog, monkeypatch):
    # A bug in the backend: an error that is none of the ones Indexer.process expects.
    attempts = []

    def buggy_index(content_hash, path):
        attempts.append(path)
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(indexer.backend, "index", buggy_index)
    [path] = add_photos(engine, tmp_path / "photos", 1, prefix="buggy")
    worker = QueueWorker(engine, indexer, 1, lambda job, outcome: None)
    worker.start()
    try:
        wait_for(lambda: attempts, what="the attempt")
        time.sleep(0.3)
        assert len(attempts) == 1  # deferred, not spinning
        with read_transaction(engine) as connection:
            row = file_store.get_by_path(connection, path)
            [reason] = connection.exec_driver_sql("select error from files where path = ?", (path,)).one()
        assert row is not None and row.state == "pending" and row.attempts == 1
        assert reason.startswith("internal error: RecursionError")
        with write_transaction(engine) as connection:  # time passes
            connection.exec_driver_sql("update files set next_attempt_at = 0")
        worker.wake()
        wait_for(lambda: states(engine)["failed"] == 1, what="failed after the last attempt")
        assert len(attempts) == 2
        assert f"indexing {path} failed unexpectedly" in caplog.text
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
            return StateCounts()

        monkeypatch.setattr(service.health, "counts", broken)
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


def test_an_embedded_service_whose_stop_is_not_clean_returns_rather_than_ending_its_owners_process(tmp_path, monkeypatch, caplog):
    """``dupe-scanner run`` leaves at once (``os._exit``) when work outlasts the grace time;
    a service run in another program's thread (these tests') must not take that program down."""
    photos = tmp_path / "photos"
    photos.mkdir()
    settings = parse_settings(
        {"paths": {"state": "state/state.db", "reports": "reports"}, "watch": [{"path": "photos"}]},
        base_dir=tmp_path,
        source=None,
    )
    from dupe_scanner.service import app

    taken: list[str] = []

    def leave(code):
        taken.append("the process")
        raise SystemExit(code)

    monkeypatch.setattr(app.os, "_exit", leave)  # as it was, the test's own process would end here
    monkeypatch.setattr(app, "kill_all", lambda processes: taken.append("its children"))
    service = Service(settings, Notifier(None))
    real_shutdown = service._shutdown
    monkeypatch.setattr(service, "_shutdown", lambda: real_shutdown() and False)  # work outlasted the grace time
    returned: list[int] = []
    thread = threading.Thread(target=lambda: returned.append(service.run()))
    thread.start()
    try:
        wait_for(lambda: service.health is not None, timeout=30, what="the service's start")
    finally:
        service.stop()
        thread.join(30)
    assert returned == [0] and taken == []
    assert "some work was still running" in caplog.text
