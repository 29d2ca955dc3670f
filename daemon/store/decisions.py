"""The decisions tables: what a person decided, keyed by content hash.

Every function takes the connection it works in; the caller decides the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, func, insert, select

from dupe_scanner.decisions import DecidedContent, Decision, Decisions
from dupe_scanner.store.schema import decision_contents, decisions


def add(connection: Connection, kind: str, contents: Iterable[DecidedContent], made_at: float, source: str) -> Decision:
    """Record one decision; an identical one already in force is returned instead of a copy.

    So importing the same file twice, or repeating a command, changes nothing.
    """
    contents = tuple(sorted(set(contents), key=lambda c: c.content_hash))
    hashes = frozenset(content.content_hash for content in contents)
    for existing in load(connection).all:
        if existing.kind == kind and existing.hashes == hashes:
            return existing
    key = connection.execute(insert(decisions).values(kind=kind, made_at=made_at, source=source)).inserted_primary_key
    assert key is not None  # an insert of one row has one
    decision_id = key[0]
    connection.execute(
        insert(decision_contents),
        [{"decision_id": decision_id, "content_hash": c.content_hash, "path": c.path} for c in contents],
    )
    return Decision(decision_id, kind, made_at, source, contents)


def load(connection: Connection) -> Decisions:
    """Every decision in force, oldest first."""
    members: dict[int, list[DecidedContent]] = {}
    rows = connection.execute(select(decision_contents).order_by(decision_contents.c.decision_id, decision_contents.c.content_hash))
    for row in rows:
        members.setdefault(row.decision_id, []).append(DecidedContent(row.content_hash, row.path))
    return Decisions(
        tuple(
            Decision(row.id, row.kind, row.made_at, row.source, tuple(members.get(row.id, ())))
            for row in connection.execute(select(decisions).order_by(decisions.c.id))
        )
    )


def remove(connection: Connection, decision_id: int) -> bool:
    """Undo a decision. False when there is none with that id."""
    connection.execute(delete(decision_contents).where(decision_contents.c.decision_id == decision_id))
    return connection.execute(delete(decisions).where(decisions.c.id == decision_id)).rowcount == 1


def count(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(decisions)).scalar_one()


def revision(connection: Connection) -> str:
    """Changes whenever a decision is added or undone: for the service to know to rescan."""
    row = connection.execute(select(func.count(), func.max(decisions.c.id)).select_from(decisions)).one()
    return f"{row[0]}:{row[1]}"
