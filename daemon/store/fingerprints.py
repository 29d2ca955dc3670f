"""The embedded backend's stored fingerprints: the ``features`` rows and their ``feature_hashes``.

Each function takes the caller's connection, as the rest of the store does; the backend
decides the transactions. ``analyser`` is the version a row must carry to count as current
(``dupe_scanner.analysis.features.ANALYSER``): rows of any other version are stale.
``feature_hashes`` is written by the state's triggers only, never here (migration 0003).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import ColumnElement, Connection, bindparam, delete, exists, func, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dupe_scanner.store.batching import batches
from dupe_scanner.store.schema import contents, feature_hashes, features, tallies

WITHOUT_FINGERPRINT = "contents_without_fingerprint"  # the tally of contents with no ``feature_hashes`` row


def counts(connection: Connection, analyser: str) -> tuple[int, int]:
    """(rows of this analyser, rows of any other)."""
    current = connection.scalar(select(func.count()).select_from(feature_hashes).where(feature_hashes.c.analyser == analyser))
    other = connection.scalar(select(func.count()).select_from(feature_hashes).where(_another(analyser)))
    return int(current or 0), int(other or 0)


def store(connection: Connection, content_hash: str, analyser: str, blob: bytes) -> None:
    """Write a content's fingerprint, over whatever was there."""
    statement = sqlite_insert(features).values(hash=content_hash, analyser=analyser, data=blob)
    connection.execute(statement.on_conflict_do_update(index_elements=[features.c.hash], set_={"analyser": analyser, "data": blob}))


def forget(connection: Connection, content_hashes: Iterable[str]) -> None:
    for batch in batches(content_hashes):
        connection.execute(delete(features).where(features.c.hash.in_(batch)))


def forget_all(connection: Connection) -> None:
    connection.execute(delete(features))


def outdated(connection: Connection, analyser: str) -> set[str]:
    """Contents the state knows with no fingerprint of ``analyser``: none at all, or another version's."""
    # "Another version's" starts from the analyser index, which names few or none. "None at
    # all" is a pass over every content, made only when the count the state's triggers keep
    # says there is one (migration 0007): a crash or a forgotten fingerprint leaves them.
    another_version = select(feature_hashes.c.hash).join(contents, contents.c.hash == feature_hashes.c.hash).where(_another(analyser))
    found = set(connection.scalars(another_version))
    if connection.scalar(select(tallies.c.value).where(tallies.c.name == WITHOUT_FINGERPRINT)):
        any_fingerprint = select(feature_hashes.c.hash).where(feature_hashes.c.hash == contents.c.hash)
        found |= set(connection.scalars(select(contents.c.hash).where(~exists(any_fingerprint))))
    return found


def stale(connection: Connection, analyser: str) -> set[str]:
    """Fingerprints of another version than ``analyser``."""
    return set(connection.scalars(select(feature_hashes.c.hash).where(_another(analyser))))


def present(connection: Connection, content_hashes: Collection[str], analyser: str) -> set[str]:
    """Those of ``content_hashes`` with a fingerprint of ``analyser``."""
    found: set[str] = set()
    for batch in batches(content_hashes):
        found.update(connection.scalars(select(feature_hashes.c.hash).where(feature_hashes.c.hash.in_(batch), _of_analyser(analyser))))
    return found


def hash_rows(connection: Connection, analyser: str, content_hashes: Collection[str] | None = None) -> list[tuple[str, bytes, float]]:
    """Every current fingerprint's (key, hash prefix, when its content was analysed, or 0
    for a row the state does not know: left by a crash), in key order; only those of
    ``content_hashes`` where given."""
    # From ``feature_hashes``, not ``features``: SQLite reads a whole 20 KB blob to take its
    # first bytes, and this reads every content's.
    query = (
        select(feature_hashes.c.hash, feature_hashes.c.prefix, func.coalesce(contents.c.analysed_at, 0.0))
        .select_from(feature_hashes.outerjoin(contents, contents.c.hash == feature_hashes.c.hash))
        .order_by(feature_hashes.c.hash)
    )
    if content_hashes is None:  # every row: from the analyser index, then sorted (4.5 s at a million, against 6.1 in key order)
        every = query.where(feature_hashes.c.analyser == analyser)
        return [(key, bytes(prefix), float(analysed_at)) for key, prefix, analysed_at in connection.execute(every)]
    some = query.where(feature_hashes.c.hash.in_(bindparam("keys", expanding=True)), _of_analyser(analyser))
    rows = []
    for batch in batches(sorted(content_hashes)):
        rows += [(key, bytes(prefix), float(analysed_at)) for key, prefix, analysed_at in connection.execute(some, {"keys": batch})]
    return sorted(rows)


def blobs(connection: Connection, content_hashes: Collection[str], analyser: str) -> dict[str, bytes]:
    """The whole fingerprints of those of ``content_hashes`` that have one of ``analyser``."""
    query = select(features.c.hash, features.c.data).where(features.c.hash.in_(bindparam("keys", expanding=True)), features.c.analyser == analyser)
    found: dict[str, bytes] = {}
    for batch in batches(sorted(content_hashes)):
        for key, data in connection.execute(query, {"keys": batch}):
            found[key] = bytes(data)
    return found


def _of_analyser(analyser: str) -> ColumnElement[bool]:
    """``analyser = X`` for rows looked up by key. Left bare, SQLite answers a lookup of a few
    keys from the analyser index instead, which every row of a library matches: 0.4 s for 100
    keys at a million contents, at every scan, against 1 ms looking each key up. ``likely()``
    tells it the test rules out little."""
    return func.likely(feature_hashes.c.analyser == analyser)


def _another(analyser: str) -> ColumnElement[bool]:
    """``analyser != X`` as two ranges, which SQLite answers from the analyser index (a "!="
    makes it read every row): the rows of another version are few or none."""
    return or_(feature_hashes.c.analyser < analyser, feature_hashes.c.analyser > analyser)
