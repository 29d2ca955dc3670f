"""Analysed contents, the pairs found between them, the scans, and small facts in ``meta``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import networkx as nx
from sqlalchemy import (
    Connection,
    Integer,
    Select,
    String,
    Subquery,
    cast,
    column,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dupe_scanner.store.batching import BATCH, batches
from dupe_scanner.store.schema import GONE, contents, features, files, meta, pairs, scans
from dupe_scanner.values import ImageInfo, ScoredPair

PAIR_WRITES = 5_000  # pairs written per statement by ``replace_pairs``
# Sets of contents joined by matches up to this size have each pair inside them looked up
# (``pairs_grouping_weighs``), at most 496; a content has 9 to 18 stored pairs to read otherwise.
LOOKED_UP_UP_TO = 32
PAIRS_REVISION_KEY = "pairs_revision"  # in ``meta``: see ``pairs_revision``


def has_content(connection: Connection, content_hash: str) -> bool:
    return connection.execute(select(exists().where(contents.c.hash == content_hash))).scalar_one()


def record_content(connection: Connection, content_hash: str, info: ImageInfo, now: float) -> None:
    statement = sqlite_insert(contents).values(
        hash=content_hash, width=info.width, height=info.height, format=info.format, analysed_at=now, needs_scan=True
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[contents.c.hash],
            set_={"width": info.width, "height": info.height, "format": info.format, "analysed_at": now, "needs_scan": True},
        )
    )


def orphaned_contents(connection: Connection, gone_before: float) -> list[str]:
    """Contents no file holds any more: to be forgotten by the backend and the state.

    A content whose file went only after ``gone_before`` is kept a while: a move between
    two watched folders arrives as a delete and a create, and its analysis is still good.
    """
    # Those no file row names are counted by the state's triggers (migration 0006): a lookup
    # on the count's index, where asking the files' index for each content was a pass over
    # every content of the library at every scan (0.4 s at a million).
    unheld = set(connection.execute(select(contents.c.hash).where(contents.c.file_count == 0)).scalars())
    other = files.alias("other")
    held_by_another = select(other.c.id).where(
        other.c.content_hash == files.c.content_hash, or_(other.c.state != GONE, other.c.changed_at >= gone_before)
    )
    only_long_gone = select(files.c.content_hash).where(
        files.c.state == GONE, files.c.changed_at < gone_before, files.c.content_hash.is_not(None), ~exists(held_by_another)
    )
    return sorted(unheld | set(connection.execute(only_long_gone).scalars()))


def delete_contents(connection: Connection, hashes: Iterable[str]) -> None:
    """Forget these contents, their features and (by the key's cascade) their pairs."""
    deleted = 0
    for batch in batches(hashes):
        deleted += connection.execute(delete(contents).where(contents.c.hash.in_(batch))).rowcount
        connection.execute(delete(features).where(features.c.hash.in_(batch)))
    if deleted:
        _count_pair_write(connection)


def delete_all_contents(connection: Connection) -> None:
    _count_pair_write(connection)
    connection.execute(delete(pairs))
    connection.execute(delete(features))
    connection.execute(update(files).values(content_hash=None))
    connection.execute(delete(contents))


def content_hashes(connection: Connection) -> list[str]:
    return list(connection.execute(select(contents.c.hash).order_by(contents.c.hash)).scalars())


def content_count(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(contents)).scalar_one()


def needing_scan(connection: Connection) -> list[str]:
    """The contents awaiting comparison, in the order they were analysed (ties by key): the
    order in which a scan compares them part by part (``scanning.update_pairs``)."""
    query = select(contents.c.hash).where(contents.c.needs_scan == true()).order_by(contents.c.analysed_at, contents.c.hash)
    return list(connection.execute(query).scalars())


def awaiting_scan_count(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(contents).where(contents.c.needs_scan == true())).scalar_one()


def mark_all_for_scan(connection: Connection) -> None:
    """Every content awaits comparison: a full one, which scans then carry out part by part."""
    connection.execute(update(contents).values(needs_scan=True))


def mark_scanned(connection: Connection, hashes: Iterable[str]) -> None:
    for batch in batches(hashes):
        connection.execute(update(contents).where(contents.c.hash.in_(batch)).values(needs_scan=False))


def replace_pairs(connection: Connection, found: Iterable[ScoredPair], changed: list[str] | None) -> int:
    """Store the pairs a scan found: all of them (``changed=None``) or those touching ``changed``.

    Written ``PAIR_WRITES`` at a time as ``found`` is read, never all held at once: a first
    scan finds tens of pairs a picture. Where a pair comes twice, the last score stands.
    A call that asks to replace nothing and stores nothing is no write (``pairs_revision``).
    """
    if changed is None:
        connection.execute(delete(pairs))
    else:
        for batch in batches(changed):
            connection.execute(delete(pairs).where(or_(pairs.c.first.in_(batch), pairs.c.second.in_(batch))))
    statement = sqlite_insert(pairs).on_conflict_do_update(
        index_elements=[pairs.c.first, pairs.c.second], set_={"score": sqlite_insert(pairs).excluded.score}
    )
    written = 0
    for some in batches(found, PAIR_WRITES):
        # Only pairs between contents still known (one may have gone during the scan); the
        # contents the pairs name are looked up, not the whole library.
        named = {key for pair in some for key in (pair.first, pair.second)}
        known = {key for batch in batches(named) for key in connection.execute(select(contents.c.hash).where(contents.c.hash.in_(batch))).scalars()}
        rows = [
            {"first": pair.first, "second": pair.second, "score": pair.score}
            for pair in some
            if pair.first != pair.second and pair.first in known and pair.second in known
        ]
        if rows:
            connection.execute(statement, rows)
        written += len(rows)
    if changed is None or changed or written:
        _count_pair_write(connection)
    return written


def stored_pairs(connection: Connection, min_score: float) -> Iterator[ScoredPair]:
    rows = connection.execute(select(pairs).where(pairs.c.score >= min_score))
    for row in rows:
        yield ScoredPair(row.first, row.second, row.score)


def pairs_newer_first(
    connection: Connection, min_score: float, after: tuple[str, str] | None, limit: int
) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """Up to ``limit`` of the pairs scoring ``min_score`` or more that come after ``after`` in
    the pairs' key order, each named from its more recently analysed content: the side a
    scan's search asked it from (see ``Backend.find_pairs``), which a verdict may depend on;
    and the key to go on after (None at the end). Read a page at a time, a million pictures'
    pairs are never all held at once."""
    first, second = contents.alias("first_content"), contents.alias("second_content")
    query = (
        select(pairs.c.first, pairs.c.second, first.c.analysed_at, second.c.analysed_at)
        .join(first, first.c.hash == pairs.c.first)
        .join(second, second.c.hash == pairs.c.second)
        .where(pairs.c.score >= min_score)
        .order_by(pairs.c.first, pairs.c.second)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(pairs.c.first, pairs.c.second) > tuple_(*after))
    rows = connection.execute(query).all()
    page = [(a, b) if a_time >= b_time else (b, a) for a, b, a_time, b_time in rows]
    return page, (rows[-1][0], rows[-1][1]) if len(rows) == limit else None


def pairs_revision(connection: Connection) -> int:
    """How many times the stored pairs were written (``_count_pair_write``): when it has not
    moved, no pair was stored, changed or forgotten meanwhile."""
    return int(get_meta(connection, PAIRS_REVISION_KEY) or 0)


def _count_pair_write(connection: Connection) -> None:
    """Every function here that stores, changes or deletes pairs (a content's deletion
    cascades to its pairs) counts its write, in the transaction that makes it."""
    statement = sqlite_insert(meta).values(key=PAIRS_REVISION_KEY, value="1")
    connection.execute(statement.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": cast(meta.c.value, Integer) + 1}))


def any_matching(connection: Connection, hashes: Iterable[str], threshold: float) -> bool:
    """Does a stored pair scoring ``threshold`` or more name one of these contents? Looked up
    on the pairs' key and their second content's index, a few lookups a content."""
    for batch in batches(hashes):
        for side in (pairs.c.first, pairs.c.second):
            if connection.execute(select(exists().where(side.in_(batch), pairs.c.score >= threshold))).scalar_one():
                return True
    return False


def matching_pairs(connection: Connection, threshold: float) -> list[ScoredPair]:
    """The pairs scoring ``threshold`` or more, read on the score's index alone, however many
    rejected verdicts the state keeps (about nine a picture)."""
    return [ScoredPair(row.first, row.second, row.score) for row in connection.execute(select(pairs).where(pairs.c.score >= threshold))]


def pairs_grouping_weighs(connection: Connection, threshold: float) -> list[ScoredPair]:
    """The pairs scoring ``threshold`` or more, and every other stored pair (whatever its
    score) inside a set of contents they join: all that grouping weighs. A pair between two
    such sets joins nothing, and no group holds both its contents.

    A set of up to ``LOOKED_UP_UP_TO`` contents (most are two or three) has each pair inside
    it looked up on the pairs' key; a larger one has every stored pair of each of its
    contents read, and those leading outside it dropped. Reading every stored pair of every
    matched content instead cost 1.2 to 1.4 s at a million pictures, for 34,000 pairs kept
    of 360,000 read.
    """
    matching = matching_pairs(connection, threshold)
    weighed = list(matching)
    known = {(pair.first, pair.second) for pair in matching}
    inside_small_sets: list[tuple[str, str]] = []
    for joined in nx.connected_components(nx.Graph((pair.first, pair.second) for pair in matching)):
        if len(joined) <= LOOKED_UP_UP_TO:
            inside_small_sets += [pair for pair in itertools.combinations(sorted(joined), 2) if pair not in known]
        else:
            weighed += [pair for pair in pairs_among(connection, joined) if (pair.first, pair.second) not in known]
    weighed += pairs_by_key(connection, inside_small_sets)
    return weighed


def pairs_among(connection: Connection, among: set[str]) -> Iterator[ScoredPair]:
    """Every stored pair (whatever its score) between two contents of ``among``."""
    # Not "first IN among AND second IN among" in one query: SQLite probes the pairs' key
    # with every combination of the two lists, |among|² lookups (9 s for 2,000 pairs in a
    # library of 100,000). Each pair is found once, by its first content, in index order.
    for batch in batches(sorted(among)):
        for row in connection.execute(select(pairs).where(pairs.c.first.in_(batch))):
            if row.second in among:
                yield ScoredPair(row.first, row.second, row.score)


def pairs_by_key(connection: Connection, wanted: Iterable[tuple[str, str]]) -> Iterator[ScoredPair]:
    """The stored verdicts on those of the ``wanted`` pairs (first < second) the state holds,
    each looked up on the pairs' key."""
    for batch in batches(wanted, BATCH // 2):  # two bound values a pair
        asked = _rows_of_pairs(list(batch))
        query = _verdicts_asked(asked)
        for row in connection.execute(query):
            yield ScoredPair(row.first, row.second, row.score)


def compared_pairs(connection: Connection, wanted: Iterable[tuple[str, str]]) -> Iterator[ScoredPair]:
    """The stored verdicts (whatever their score) on those of the ``wanted`` pairs (first <
    second) whose two contents are compared already (not awaiting comparison): verdicts of the
    comparison the state records, which a scan's parts and the scans before it made, and this
    scan will not make again. Looked up pair by pair on the pairs' key, so the cost follows the
    pairs asked for, not how many pairs their contents have (a crowd's first picture, a
    million)."""
    first, second = contents.alias("first_content"), contents.alias("second_content")
    for batch in batches(wanted, BATCH // 2):  # two bound values a pair
        # From a table of the pairs asked for, each looked up on the pairs' key. Asked as
        # ``(first, second) IN (...)``, SQLite started from the contents not awaiting
        # comparison (a library's every one) instead: 1.1 s for 100 pairs at a million files.
        asked = _rows_of_pairs(list(batch))
        query = (
            _verdicts_asked(asked)
            .join(first, first.c.hash == pairs.c.first)
            .join(second, second.c.hash == pairs.c.second)
            .where(func.likely(first.c.needs_scan == false()), func.likely(second.c.needs_scan == false()))
        )
        for row in connection.execute(query):
            yield ScoredPair(row.first, row.second, row.score)


def _verdicts_asked(asked: Subquery) -> Select:
    """The stored verdicts on the pairs of ``asked`` (``_rows_of_pairs``), from that table."""
    return (
        select(pairs.c.first, pairs.c.second, pairs.c.score)
        .select_from(asked)
        .join(pairs, (pairs.c.first == asked.c.column1) & (pairs.c.second == asked.c.column2))
    )


def _rows_of_pairs(batch: list[tuple[str, str]]) -> Subquery:
    """``batch`` as a table SQLite can start a join from: ``(VALUES (?, ?), ...)``, its columns
    SQLite's own names (``column1``, ``column2``), which SQLAlchemy's ``values()`` cannot give it."""
    rows = ", ".join(f"(:first_{at}, :second_{at})" for at in range(len(batch)))
    bound = {f"first_{at}": pair[0] for at, pair in enumerate(batch)} | {f"second_{at}": pair[1] for at, pair in enumerate(batch)}
    return text(f"VALUES {rows}").bindparams(**bound).columns(column("column1", String), column("column2", String)).subquery("asked")


@dataclass(frozen=True)
class ScanRecord:
    id: int
    started_at: float
    finished_at: float | None
    threshold: float
    full: bool
    groups: int | None
    duplicate_files: int | None
    error: str | None


def start_scan(connection: Connection, now: float, threshold: float, full: bool) -> int:
    key = connection.execute(insert(scans).values(started_at=now, threshold=threshold, full=full)).inserted_primary_key
    assert key is not None  # an insert of one row has one
    return key[0]


def finish_scan(connection: Connection, scan_id: int, now: float, groups: int, duplicate_files: int, error: str | None = None) -> None:
    connection.execute(
        update(scans).where(scans.c.id == scan_id).values(finished_at=now, groups=groups, duplicate_files=duplicate_files, error=error)
    )


def last_scan(connection: Connection) -> ScanRecord | None:
    """The last scan that ended, whether it wrote its reports or failed (``error``)."""
    return _last_finished(connection, scans.c.finished_at.is_not(None))


def last_successful_scan(connection: Connection) -> ScanRecord | None:
    """The last scan whose reports were written: what the reports show is as of its start."""
    return _last_finished(connection, scans.c.finished_at.is_not(None), scans.c.error.is_(None))


def _last_finished(connection: Connection, *conditions) -> ScanRecord | None:
    row = connection.execute(select(scans).where(*conditions).order_by(scans.c.id.desc()).limit(1)).first()
    return ScanRecord(**row._mapping) if row else None


def get_meta(connection: Connection, key: str) -> str | None:
    return connection.execute(select(meta.c.value).where(meta.c.key == key)).scalar()


def set_meta(connection: Connection, key: str, value: str) -> None:
    statement = sqlite_insert(meta).values(key=key, value=value)
    connection.execute(statement.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))
