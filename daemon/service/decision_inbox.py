"""Decisions files dropped into the reports folder's ``decisions/`` folder, imported by the service.

The review page (or a script) saves a decisions file there (format in
``dupe_scanner.decision_file``); at its next scan the service records it and renames it
``*.imported``, so it is never imported twice. A file it cannot use is renamed
``*.rejected`` and the reasons are logged. A file still being written (modified within
the last ``settled_seconds``) waits for the next scan.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import Engine

from dupe_scanner import decision_file
from dupe_scanner.errors import UsageError
from dupe_scanner.store.database import write_transaction

log = logging.getLogger(__name__)

FOLDER = "decisions"


def import_dropped(engine: Engine, reports_dir: Path, now: float, settled_seconds: float) -> int:
    """Import every settled ``*.json`` in ``reports_dir/decisions``; returns how many were imported."""
    folder = reports_dir / FOLDER
    if not folder.is_dir():
        return 0
    imported = 0
    for path in sorted(folder.glob("*.json")):
        try:
            if path.stat().st_mtime > now - settled_seconds:
                continue  # perhaps still being written
            requests = decision_file.read_file(path)
            with write_transaction(engine) as connection:
                recorded = decision_file.record(connection, requests, str(path), now)
        except (UsageError, OSError) as error:
            log.warning("decisions file not imported, renamed %s: %s", _set_aside(path, ".rejected").name, error)
            continue
        log.info("imported %d decisions from %s", len(recorded), _set_aside(path, ".imported"))
        imported += 1
    return imported


def _set_aside(path: Path, suffix: str) -> Path:
    """Rename ``path`` with ``suffix`` added, never over an earlier file of the same name."""
    target = path.with_name(path.name + suffix)
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}{suffix}-{number}")
    try:
        os.replace(path, target)
    except OSError as error:
        log.warning("cannot rename %s: %s; it will be read again at the next scan", path, error)
    return target
