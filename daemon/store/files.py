"""The files table: what is on disk as far as we know, and the queue of work to do.

Every function takes the connection it works in; the caller decides the transaction.
A pending row is work to do. It stays pending until indexing succeeds or fails for good,
so a process killed at any instant loses nothing: the row is simply done again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select, true, update

from dupe_scanner.store.batching import batches
from dupe_scanner.store.schema import FAILED, GONE, INDEXED, PENDING, contents, files

# FileStat lives in dupe_scanner.values (the indexer and reconcile use it too); importable from here as before.
from dupe_scanner.values import FileStat


@dataclass(frozen=True)
class KnownFile:
    id: int
    path: str
    stat: FileStat
    state: str
    content_hash: str | None
    attempts: int


@dataclass(frozen=True)
class FileFailure:
    path: str
    error: str
    attempts: int


def _under(root: str):
    """Paths strictly below ``root`` as an index-friendly range ('/' sorts just before '0')."""
    prefix = root.rstrip("/") + "/"
    return and_(files.c.path >= prefix, files.c.path < prefix[:-1] + "0")


def _known(row) -> KnownFile:
    return KnownFile(
        id=row.id,
        path=row.path,
        stat=FileStat(row.size, row.mtime_ns, row.inode, row.device),
        state=row.state,
        content_hash=row.content_hash,
        attempts=row.attempts,
    )


def signatures_under(connection: Connection, root: str) -> Iterator[tuple[str, int, int]]:
    """Every file the state knows below ``root`` and not already gone, as (path, size,
    mtime_ns), read as they are iterated: the reconcile walk holds a million of these."""
    yield from connection.execute(select(files.c.path, files.c.size, files.c.mtime_ns).where(_under(root), files.c.state != GONE))


def get_by_path(connection: Connection, path: str) -> KnownFile | None:
    row = connection.execute(select(files).where(files.c.path == path)).first()
    return _known(row) if row else None


def get_by_id(connection: Connection, file_id: int) -> KnownFile | None:
    row = connection.execute(select(files).where(files.c.id == file_id)).first()
    return _known(row) if row else None


def mark_seen(connection: Connection, path: str, stat: FileStat, now: float) -> bool:
    """Record that ``path`` exists with ``stat``. Returns True when that is news (work queued).

    A new path, or one whose size or mtime changed, or one that had gone, becomes pending.
    """
    row = connection.execute(select(files).where(files.c.path == path)).first()
    if row is None:
        connection.execute(
            insert(files).values(
                path=path,
                **_stat_values(stat),
                state=PENDING,
                attempts=0,
                next_attempt_at=0.0,
                seen_at=now,
                changed_at=now,
            )
        )
        return True
    unchanged = FileStat(row.size, row.mtime_ns, row.inode, row.device)
    if row.state != GONE and unchanged.same_content_as(stat):
        if unchanged.inode != stat.inode or unchanged.device != stat.device:
            connection.execute(update(files).where(files.c.id == row.id).values(**_stat_values(stat), seen_at=now))
        return False
    connection.execute(
        update(files)
        .where(files.c.id == row.id)
        .values(**_stat_values(stat), state=PENDING, error=None, attempts=0, next_attempt_at=0.0, seen_at=now, changed_at=now)
    )
    return True


def _stat_values(stat: FileStat) -> dict:
    return {"size": stat.size, "mtime_ns": stat.mtime_ns, "inode": stat.inode, "device": stat.device}


def mark_gone(connection: Connection, paths: Iterable[str], now: float, untouched_since: float | None = None) -> int:
    """The files at ``paths`` no longer exist (or no longer matter). Returns how many changed.

    ``untouched_since`` spares rows seen or changed since then: a walk that began then
    did not see files that events recorded while it ran.
    """
    changed = 0
    for batch in batches(paths):
        query = update(files).where(files.c.path.in_(batch), files.c.state != GONE)
        if untouched_since is not None:
            query = query.where(files.c.seen_at < untouched_since, files.c.changed_at < untouched_since)
        result = connection.execute(query.values(state=GONE, changed_at=now, error=None))
        changed += result.rowcount
    return changed


def mark_gone_under(connection: Connection, root: str, now: float) -> int:
    """Everything below ``root`` is gone from view (a watched folder was removed)."""
    result = connection.execute(
        update(files).where(_under(root), files.c.state != GONE).values(state=GONE, changed_at=now, error=None)
    )
    return result.rowcount


def move(connection: Connection, source: str, destination: str, stat: FileStat, now: float) -> bool:
    """A rename: the row keeps its analysis under the new path. False if ``source`` is unknown."""
    row = connection.execute(select(files).where(files.c.path == source, files.c.state != GONE)).first()
    if row is None:
        return False
    connection.execute(delete(files).where(files.c.path == destination))
    unchanged = FileStat(row.size, row.mtime_ns, row.inode, row.device).same_content_as(stat)
    values = {"path": destination, **_stat_values(stat), "seen_at": now, "changed_at": now}
    if not unchanged:
        values.update(state=PENDING, attempts=0, next_attempt_at=0.0, error=None)
    connection.execute(update(files).where(files.c.id == row.id).values(**values))
    return True


def due(connection: Connection, now: float, limit: int, exclude_ids: Iterable[int] = ()) -> list[KnownFile]:
    """Pending files whose next attempt is due, oldest change first."""
    query = (
        select(files)
        .where(files.c.state == PENDING, files.c.next_attempt_at <= now)
        .order_by(files.c.next_attempt_at, files.c.id)
        .limit(limit)
    )
    excluded = set(exclude_ids)
    if excluded:
        query = query.where(files.c.id.not_in(excluded))
    return [_known(row) for row in connection.execute(query)]


def pending_under(connection: Connection, root: str) -> list[KnownFile]:
    rows = connection.execute(
        select(files).where(_under(root), files.c.state == PENDING).order_by(files.c.path)
    )
    return [_known(row) for row in rows]


def next_attempt_at(connection: Connection) -> float | None:
    """When the earliest pending file is due (0.0: now), or None when the queue is empty."""
    return connection.execute(select(func.min(files.c.next_attempt_at)).where(files.c.state == PENDING)).scalar()


def defer(connection: Connection, paths: Iterable[str], until: float) -> int:
    """Hold pending files back until ``until`` without counting an attempt (still settling)."""
    deferred = 0
    for batch in batches(paths):
        result = connection.execute(
            update(files).where(files.c.path.in_(batch), files.c.state == PENDING).values(next_attempt_at=until)
        )
        deferred += result.rowcount
    return deferred


def changed_since(connection: Connection, since: float) -> bool:
    """Has anything a report shows changed at or after ``since``?

    A file seen, changed, gone or failed (``changed_at``), or indexed (``indexed_at``), or a
    content not yet compared with the others.

    A few index lookups, whatever the library's size (ix_files_changed_at, ix_files_indexed_at,
    ix_contents_needs_scan: ``needs_scan = 1``, which the index can seek, not ``needs_scan``).
    """
    touched = exists().where(or_(files.c.changed_at >= since, files.c.indexed_at >= since))
    unscanned = exists().where(contents.c.needs_scan == true())
    return bool(connection.execute(select(or_(touched, unscanned))).scalar())


def mark_indexed(connection: Connection, job: KnownFile, content_hash: str, stat: FileStat, now: float) -> bool:
    """Record the analysis of ``job``, unless its row changed since the job was taken.

    False when the file was deleted, moved or rewritten meanwhile (the watcher or a walk
    updated the row): what was analysed is then no longer what is on disk.
    """
    result = connection.execute(
        update(files)
        .where(_untouched(job))
        .values(**_stat_values(stat), content_hash=content_hash, state=INDEXED, error=None, indexed_at=now)
    )
    return result.rowcount == 1


def mark_failed(connection: Connection, job: KnownFile, reason: str, now: float) -> bool:
    result = connection.execute(
        update(files)
        .where(_untouched(job))
        .values(state=FAILED, error=reason, attempts=files.c.attempts + 1, changed_at=now, content_hash=None)
    )
    return result.rowcount == 1


def retry_later(connection: Connection, job: KnownFile, reason: str, at: float, count: bool = True) -> bool:
    """Keep the file pending, with the reason, until ``at``; ``count`` uses up one attempt."""
    attempts = files.c.attempts + 1 if count else files.c.attempts
    result = connection.execute(update(files).where(_untouched(job)).values(error=reason, attempts=attempts, next_attempt_at=at))
    return result.rowcount == 1


def _untouched(job: KnownFile):
    """The job's row, still pending and with the stat it had when the job was taken."""
    return and_(
        files.c.id == job.id,
        files.c.state == PENDING,
        files.c.size == job.stat.size,
        files.c.mtime_ns == job.stat.mtime_ns,
    )


def note_waiting(connection: Connection, file_ids: Iterable[int], reason: str) -> None:
    """Say why pending files were not done (e.g. the backend refused more documents)."""
    for batch in batches(file_ids):
        connection.execute(update(files).where(files.c.id.in_(batch), files.c.state == PENDING).values(error=reason))


def requeue_all(connection: Connection, now: float) -> int:
    """Every known file is to be indexed again (the backend changed)."""
    result = connection.execute(
        update(files)
        .where(files.c.state != GONE)
        .values(state=PENDING, content_hash=None, attempts=0, next_attempt_at=0.0, error=None, changed_at=now)
    )
    return result.rowcount


def requeue_contents(connection: Connection, content_hashes: Iterable[str], now: float) -> int:
    """Files holding these contents are to be indexed again (their analysis is outdated)."""
    requeued = 0
    for batch in batches(content_hashes):
        result = connection.execute(
            update(files)
            .where(files.c.content_hash.in_(batch), files.c.state != GONE)
            .values(state=PENDING, attempts=0, next_attempt_at=0.0, error=None, changed_at=now)
        )
        requeued += result.rowcount
    return requeued


def requeue_failed(connection: Connection, now: float) -> int:
    result = connection.execute(
        update(files).where(files.c.state == FAILED).values(state=PENDING, attempts=0, next_attempt_at=0.0, changed_at=now)
    )
    return result.rowcount


def counts_by_state(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(files.c.state, func.count()).group_by(files.c.state))
    counts = {state: 0 for state in (PENDING, INDEXED, FAILED, GONE)}
    counts.update({state: count for state, count in rows})
    return counts


def failures(connection: Connection, limit: int) -> list[FileFailure]:
    rows = connection.execute(
        select(files.c.path, files.c.error, files.c.attempts)
        .where(or_(files.c.state == FAILED, and_(files.c.state == PENDING, files.c.error.is_not(None))))
        .order_by(files.c.path)
        .limit(limit)
    )
    return [FileFailure(row.path, row.error or "", row.attempts) for row in rows]


@dataclass(frozen=True)
class IndexedFile:
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int
    height: int
    format: str


def files_holding(connection: Connection, holding: Iterable[str]) -> list[IndexedFile]:
    """The indexed files holding one of the contents ``holding``, with their content's
    description, in path order."""
    found = []
    for batch in batches(sorted(set(holding))):
        # By content alone, the state checked here: given the state too, SQLite walks the state
        # index, every indexed file of the library (2.6 s at a million), not the few asked for.
        query = (
            select(files.c.path, files.c.size, files.c.mtime_ns, files.c.content_hash, files.c.state)
            .add_columns(contents.c.width, contents.c.height, contents.c.format)
            .join(contents, contents.c.hash == files.c.content_hash)
            .where(files.c.content_hash.in_(batch))
        )
        # Rows unpacked as tuples: a row's attribute lookups were a third of this read at a
        # million files (40,000 files of matching pictures).
        found += [
            IndexedFile(path, size, mtime_ns, content_hash, width, height, format_name)
            for path, size, mtime_ns, content_hash, state, width, height, format_name in connection.execute(query)
            if state == INDEXED
        ]
    return sorted(found, key=lambda file: file.path)


def copied_contents(connection: Connection) -> set[str]:
    """Contents more than one file row holds, whatever the rows' states: byte-identical
    copies, and some that were (the caller reads the files' states). Read on the count the
    state's triggers keep (migration 0006), where counting every file's content took a pass
    over the files' content index: 0.25 s at a million files, 1.25 s with a cold cache."""
    return set(connection.execute(select(contents.c.hash).where(contents.c.file_count > 1)).scalars())


def indexed_count(connection: Connection) -> int:
    """Indexed files holding a content. Counted on the state index alone, less the few
    indexed rows whose content was forgotten (found on the content index): asking both of
    every row read each file's row, 0.2 to 0.4 s at a million files, 0.06 s this way."""
    indexed = connection.execute(select(func.count()).select_from(files).where(files.c.state == INDEXED)).scalar_one()
    # ``state || ''``: not the state's index, which every indexed row matches; the content's.
    forgotten = and_(files.c.content_hash.is_(None), (files.c.state + "") == INDEXED)
    without = connection.execute(select(func.count()).select_from(files).where(forgotten))
    return indexed - without.scalar_one()


def files_changed_since(connection: Connection, since: float, at_most: int) -> list[tuple[str, str | None]] | None:
    """The path and content of each file seen, changed, gone, failed or indexed at or after
    ``since`` (``changed_since``'s files), or None if there are more than ``at_most``."""
    query = select(files.c.path, files.c.content_hash).where(or_(files.c.changed_at >= since, files.c.indexed_at >= since)).limit(at_most + 1)
    rows = [(path, content_hash) for path, content_hash in connection.execute(query)]
    return rows if len(rows) <= at_most else None


def any_copied(connection: Connection, hashes: Iterable[str]) -> bool:
    """Is one of these contents held by more than one file row (``copied_contents``)?"""
    for batch in batches(hashes):
        if connection.execute(select(exists().where(contents.c.hash.in_(batch), contents.c.file_count > 1))).scalar_one():
            return True
    return False


def forget_gone(connection: Connection, older_than: float) -> int:
    """Drop rows of files gone before ``older_than``; recent ones stay visible in ``status``."""
    return connection.execute(delete(files).where(files.c.state == GONE, files.c.changed_at < older_than)).rowcount


def delete_all(connection: Connection) -> None:
    connection.execute(delete(files))


def paths_of_content(connection: Connection, content_hash: str) -> list[str]:
    """The indexed files holding ``content_hash`` now, by path."""
    rows = connection.execute(
        select(files.c.path).where(files.c.content_hash == content_hash, files.c.state == INDEXED).order_by(files.c.path)
    )
    return list(rows.scalars())
