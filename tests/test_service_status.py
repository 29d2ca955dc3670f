"""The status file the service writes and ``dupe-scanner status`` reads."""

from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest

from dupe_scanner.service.status import ServiceStatus, StateCounts, describe_service, read_status, status_path, write_status
from dupe_scanner.settings import parse_settings
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import open_state, read_transaction, write_transaction
from dupe_scanner.store.files import FileStat


def settings_in(folder: Path):
    return parse_settings({"paths": {"state": "state/state.db"}}, base_dir=folder, source=None)


def status(**changes) -> ServiceStatus:
    values: dict[str, Any] = dict(
        pid=4242, started_at=1000.0, heartbeat_at=5000.0, heartbeat_seconds=10.0, phase="running",
        settings="/etc/dupe-scanner/settings.toml",
        folders=[{"path": "/srv/photos", "mode": "inotify", "reason": ""},
                 {"path": "/mnt/nas", "mode": "polling", "reason": "on nfs4 (nas:/photos)"}],
        pending=12, settling=3, indexing=2, indexed=900, failed=1,
        last_scan_at=4990.0, last_scan_groups=7, last_reports_at=4990.0,
    )
    values.update(changes)
    return ServiceStatus(**values)


def test_round_trip(tmp_path):
    path = tmp_path / "service-status.json"
    write_status(path, status())
    assert read_status(path) == status()
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_unknown_keys_from_a_newer_service_are_ignored(tmp_path):
    path = tmp_path / "s.json"
    path.write_bytes(status().to_json().replace(b'"pid"', b'"future": 1, "pid"'))
    found = read_status(path)
    assert found is not None
    assert found.pid == 4242


def test_garbage_reads_as_no_status(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{half a file")
    assert read_status(path) is None
    assert read_status(tmp_path / "missing.json") is None


def test_a_running_service(tmp_path):
    settings = settings_in(tmp_path)
    status_path(settings).parent.mkdir(parents=True)
    write_status(status_path(settings), status())
    lines = describe_service(settings, now=5004.0)
    assert lines[0].startswith("service: running (pid 4242, up 1h 6m, heartbeat 4s ago)")
    assert "  watching /srv/photos: inotify" in lines
    assert "  watching /mnt/nas: polling (on nfs4 (nas:/photos))" in lines
    assert any("12 pending, 3 settling, 2 being indexed; 900 indexed, 1 failed" in line for line in lines)
    assert any(line.startswith("  last scan: ") and "7 groups" in line for line in lines)


def test_a_silent_service_is_not_responding(tmp_path):
    settings = settings_in(tmp_path)
    status_path(settings).parent.mkdir(parents=True)
    write_status(status_path(settings), status())
    assert describe_service(settings, now=5000.0 + 31)[0].startswith("service: not responding (pid 4242")


def test_a_stopped_service(tmp_path):
    settings = settings_in(tmp_path)
    status_path(settings).parent.mkdir(parents=True)
    write_status(status_path(settings), status(phase="stopped"))
    assert describe_service(settings, now=9999.0)[0].startswith("service: not running (stopped ")


def test_no_service_ever(tmp_path):
    assert describe_service(settings_in(tmp_path))[0].startswith("service: not running (no status file")


def test_problems_are_listed(tmp_path):
    settings = settings_in(tmp_path)
    status_path(settings).parent.mkdir(parents=True)
    write_status(status_path(settings), status(problems=["/srv/photos: watch threads are not running"]))
    assert "  problem: /srv/photos: watch threads are not running" in describe_service(settings, now=5001.0)


def test_state_counts_read_the_files_by_state_and_the_last_scan(tmp_path):
    engine = open_state(tmp_path / "state.db")
    try:
        with read_transaction(engine) as connection:
            assert StateCounts.read(connection) == StateCounts()  # what a state that does not answer shows
        with write_transaction(engine) as connection:
            file_store.mark_seen(connection, "/srv/photos/a.jpg", FileStat(10, 1, 1, 1), 100.0)
            scan = content_store.start_scan(connection, 200.0, 0.6, True)
            content_store.finish_scan(connection, scan, 210.0, groups=3, duplicate_files=7)
        with read_transaction(engine) as connection:
            counts = StateCounts.read(connection)
    finally:
        engine.dispose()
    assert counts == StateCounts(pending=1, last_scan_at=210.0, last_scan_groups=3)
    with pytest.raises(FrozenInstanceError):
        counts.pending = 2  # type: ignore[misc]  # frozen: the assignment this test expects to be refused
