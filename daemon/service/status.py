"""The running service's status file, and how ``dupe-scanner status`` reads it.

The service rewrites ``service-status.json`` in the state folder at every heartbeat
(temp file + rename, so a reader never sees half of it): pid, heartbeat time, the
folders and how each is watched, the queue, the last scan and reports. ``status`` reads
it; a heartbeat older than ``STALE_AFTER`` beats means the service is gone or hung.

The file is a convenience for people, not state: losing it loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from dupe_scanner.settings import Settings
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.schema import FAILED, GONE, INDEXED, PENDING

FILE_NAME = "service-status.json"
FORMAT_VERSION = 1
STALE_AFTER = 3  # heartbeats


@dataclass(frozen=True)
class StateCounts:
    """What the state says at a heartbeat: the files by state and the last scan. The
    service's heartbeat (``health``) reads it for the status file and the STATUS= line;
    ``StateCounts()`` stands for a state that did not answer."""

    pending: int = 0
    indexed: int = 0
    failed: int = 0
    gone: int = 0
    last_scan_at: float | None = None
    last_scan_groups: int | None = None
    last_scan_error: str | None = None

    @staticmethod
    def read(connection: Connection) -> StateCounts:
        by_state = file_store.counts_by_state(connection)
        last = content_store.last_scan(connection)
        return StateCounts(
            pending=by_state.get(PENDING, 0),
            indexed=by_state.get(INDEXED, 0),
            failed=by_state.get(FAILED, 0),
            gone=by_state.get(GONE, 0),
            last_scan_at=last.finished_at if last else None,
            last_scan_groups=last.groups if last else None,
            last_scan_error=last.error if last else None,
        )


@dataclass
class ServiceStatus:
    pid: int
    started_at: float
    heartbeat_at: float
    heartbeat_seconds: float
    phase: str  # starting, running, reloading, stopping, stopped
    settings: str
    folders: list[dict[str, str]] = field(default_factory=list)  # path, mode, reason
    pending: int = 0  # rows waiting in the queue (state pending)
    settling: int = 0  # files seen changing, waiting to be stable
    indexing: int = 0  # files being indexed right now
    indexed: int = 0
    failed: int = 0
    last_scan_at: float | None = None
    last_scan_groups: int | None = None
    last_scan_error: str | None = None
    last_reports_at: float | None = None
    problems: list[str] = field(default_factory=list)  # health problems at the last heartbeat
    version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @staticmethod
    def from_json(data: bytes) -> ServiceStatus:
        raw: dict[str, Any] = json.loads(data)
        known = set(ServiceStatus.__dataclass_fields__)
        return ServiceStatus(**{key: value for key, value in raw.items() if key in known})


def status_path(settings: Settings) -> Path:
    return settings.paths.state.parent / FILE_NAME


def write_status(path: Path, status: ServiceStatus) -> None:
    """Replace the file atomically. No fsync: it is rewritten every few seconds and
    worthless after a power cut, so it need not wear the disk."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(status.to_json())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_status(path: Path) -> ServiceStatus | None:
    try:
        return ServiceStatus.from_json(path.read_bytes())
    except (OSError, ValueError, TypeError):
        return None


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d"


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "never"


def _silent(status: ServiceStatus, now: float) -> bool:
    """Whether the service missed its last ``STALE_AFTER`` heartbeats (killed, or hung)."""
    return now - status.heartbeat_at > STALE_AFTER * max(status.heartbeat_seconds, 1.0)


def describe_service(settings: Settings, now: float | None = None) -> list[str]:
    """Lines for ``dupe-scanner status`` about the service using this state."""
    now = time.time() if now is None else now
    path = status_path(settings)
    status = read_status(path)
    if status is None:
        return ["service: not running (no status file; start it with 'dupe-scanner run' or systemctl)"]
    age = now - status.heartbeat_at
    if status.phase == "stopped":
        return [f"service: not running (stopped {_when(status.heartbeat_at)})"]
    if _silent(status, now):
        return [
            f"service: not responding (pid {status.pid}, last heartbeat {_ago(age)} ago at "
            f"{_when(status.heartbeat_at)}; it may have been killed)"
        ]
    lines = [
        f"service: {status.phase} (pid {status.pid}, up {_ago(now - status.started_at)}, "
        f"heartbeat {_ago(age)} ago)"
    ]
    for folder in status.folders:
        how = folder.get("mode", "?")
        reason = folder.get("reason")
        lines.append(f"  watching {folder.get('path')}: {how}{f' ({reason})' if reason else ''}")
    lines.append(
        f"  queue: {status.pending} pending, {status.settling} settling, {status.indexing} being indexed; "
        f"{status.indexed} indexed, {status.failed} failed"
    )
    scan = f"  last scan: {_when(status.last_scan_at)}"
    if status.last_scan_groups is not None:
        scan += f", {status.last_scan_groups} groups"
    if status.last_scan_error:
        scan += f", failed: {status.last_scan_error}"
    lines.append(scan)
    lines.append(f"  last reports written: {_when(status.last_reports_at)}")
    for problem in status.problems:
        lines.append(f"  problem: {problem}")
    return lines
