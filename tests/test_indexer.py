"""The indexer records every outcome in the state: indexed, failed with a reason, or pending.

The backend here is Flow on the stand-in server, because it is the backend that can be
down: a file must never be marked failed because the server was.
"""

from dataclasses import replace

from dupe_scanner.backends.flow import FlowBackend
from dupe_scanner.indexer import Indexer, Outcome
from dupe_scanner.pathfilter import PathFilter
from dupe_scanner.reconcile import reconcile
from dupe_scanner.settings import IndexSettings
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import open_state, read_transaction
from tests.photos import make_photo, save

SETTINGS = IndexSettings(workers=2, max_attempts=3, retry_base_seconds=60)


def pending_jobs(engine, folder):
    with read_transaction(engine) as connection:
        return file_store.pending_under(connection, str(folder))


def states(engine):
    with read_transaction(engine) as connection:
        return file_store.counts_by_state(connection)


def test_a_dead_backend_leaves_files_pending_without_using_up_their_attempts(tmp_path, flow_standin, flow_settings):
    folder = tmp_path / "photos"
    for seed in range(3):
        save(make_photo(seed, (320, 240)), folder / f"{seed}.jpg")
    engine = open_state(tmp_path / "state.db")
    reconcile(engine, PathFilter(folder))
    backend = FlowBackend(flow_settings, "balanced", backoff_seconds=0.01)
    clock = [1000.0]
    indexer = Indexer(engine, backend, SETTINGS, clock=lambda: clock[0])
    flow_standin.refuse_connections()
    for _ in range(SETTINGS.max_attempts + 1):
        summary = indexer.run(pending_jobs(engine, folder))
        assert summary.counts[Outcome.RETRY] == 3
        clock[0] += 3600
    assert states(engine)["failed"] == 0
    assert all(job.attempts == 0 and "refused" in (job_error(engine, job.path) or "") for job in pending_jobs(engine, folder))

    flow_standin.accept_connections()
    summary = indexer.run(pending_jobs(engine, folder))
    assert summary.counts[Outcome.ANALYSED] == 3
    assert states(engine)["indexed"] == 3
    backend.close()


def job_error(engine, path):
    with read_transaction(engine) as connection:
        from sqlalchemy import select

        from dupe_scanner.store.schema import files

        return connection.execute(select(files.c.error).where(files.c.path == path)).scalar()


def test_a_file_the_backend_keeps_refusing_fails_after_max_attempts(tmp_path, flow_standin, flow_settings):
    folder = tmp_path / "photos"
    save(make_photo(1, (320, 240)), folder / "a.jpg")
    engine = open_state(tmp_path / "state.db")
    reconcile(engine, PathFilter(folder))
    backend = FlowBackend(replace(flow_settings, retries=0), "balanced", backoff_seconds=0.01)
    indexer = Indexer(engine, backend, SETTINGS, clock=lambda: 0.0)
    flow_standin.fail_next(count=None, status=500, endpoint="analyze")
    for _ in range(SETTINGS.max_attempts):
        with read_transaction(engine) as connection:
            jobs = file_store.pending_under(connection, str(folder))
        indexer.run(jobs)
    assert states(engine)["failed"] == 1
    with read_transaction(engine) as connection:
        (failure,) = file_store.failures(connection, 10)
    assert "gave up after 3 attempts" in failure.error
    backend.close()


def test_the_document_limit_stops_the_run_and_says_why_on_the_rest(tmp_path, flow_standin, flow_settings):
    flow_standin.document_limit = 2
    folder = tmp_path / "photos"
    for seed in range(5):
        save(make_photo(seed, (320, 240)), folder / f"{seed}.jpg")
    engine = open_state(tmp_path / "state.db")
    reconcile(engine, PathFilter(folder))
    backend = FlowBackend(flow_settings, "balanced", backoff_seconds=0.01)
    summary = Indexer(engine, backend, replace(SETTINGS, workers=1)).run(pending_jobs(engine, folder))
    assert "document limit" in (summary.stopped_because or "")
    assert states(engine)["indexed"] == 2
    assert states(engine)["pending"] == 3
    assert all("document limit" in job_error(engine, job.path) for job in pending_jobs(engine, folder))
    backend.close()


def test_byte_identical_files_indexed_at_once_are_analysed_once(tmp_path, flow_standin, flow_settings):
    folder = tmp_path / "photos"
    original = save(make_photo(3, (320, 240)), folder / "original.jpg")
    for n in range(15):
        (folder / f"copy-{n}.jpg").write_bytes(original.read_bytes())
    engine = open_state(tmp_path / "state.db")
    reconcile(engine, PathFilter(folder))
    backend = FlowBackend(flow_settings, "balanced", backoff_seconds=0.01)
    summary = Indexer(engine, backend, replace(SETTINGS, workers=4)).run(pending_jobs(engine, folder))
    assert summary.counts[Outcome.ANALYSED] == 1
    assert summary.counts[Outcome.REUSED] == 15
    assert flow_standin.counts["analyze"] == 1
    backend.close()
