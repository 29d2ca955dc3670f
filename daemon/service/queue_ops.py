"""Queries on the files queue that only the service needs.

They belong in ``daemon.store.files`` / ``contents`` (see NEEDS.md); they live here until
the store takes them, so the service does not wait for it. Like the store, every
function takes the connection it works in.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import Connection, exists, func, or_, select, update

from daemon.store.schema import PENDING, contents, files


def changed_since(connection: Connection, since: float) -> bool:
    """Has anything a report shows changed at or after ``since``?

    A file seen, changed, gone, failed (``changed_at``) or indexed (``indexed_at``), or a
    content not yet compared with the others.
    """
    touched = exists().where(or_(files.c.changed_at >= since, files.c.indexed_at >= since))
    unscanned = exists().where(contents.c.needs_scan)
    return bool(connection.execute(select(or_(touched, unscanned))).scalar())


def next_attempt_at(connection: Connection) -> float | None:
    """When the earliest pending file is due (0.0: now), or None when the queue is empty."""
    return connection.execute(select(func.min(files.c.next_attempt_at)).where(files.c.state == PENDING)).scalar()


def defer(connection: Connection, paths: Iterable[str], until: float) -> int:
    """Hold pending files back until ``until`` without counting an attempt (still settling)."""
    count = 0
    batch: list[str] = []
    for path in paths:
        batch.append(path)
        if len(batch) == 500:
            count += _defer(connection, batch, until)
            batch = []
    if batch:
        count += _defer(connection, batch, until)
    return count


def _defer(connection: Connection, paths: list[str], until: float) -> int:
    result = connection.execute(
        update(files).where(files.c.path.in_(paths), files.c.state == PENDING).values(next_attempt_at=until)
    )
    return result.rowcount
