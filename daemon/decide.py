"""The ``decide`` verbs: record, import, list and undo decisions about duplicates.

Decisions change only what the next scan reports (and what ``apply`` may move); they
never touch a file.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from dupe_scanner import decision_file
from dupe_scanner.composition import state_only
from dupe_scanner.decision_file import DecisionRequest, FileRef
from dupe_scanner.decisions import Decision
from dupe_scanner.display import visible
from dupe_scanner.errors import UsageError
from dupe_scanner.settings import Settings
from dupe_scanner.store import LOCK_WAIT_SECONDS
from dupe_scanner.store import decisions as decision_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import read_transaction, write_transaction

COMMAND_LINE = "command line"


def _say(text: str) -> None:
    print(text, flush=True)


def decide_files(settings: Settings, kind: str, paths: list[Path], *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    """``decide keep PATH`` and ``decide not-duplicates PATH PATH...``."""
    # The state spells folders resolved (symlinks followed), as `index` and the watches do.
    refs = tuple(FileRef(str(path.expanduser().absolute().parent.resolve() / path.name), None) for path in paths)
    return _record(settings, [DecisionRequest(kind, refs)], COMMAND_LINE, lock_wait)


def import_file(settings: Settings, path: Path, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    requests = decision_file.read_file(path)
    return _record(settings, requests, str(path.absolute()), lock_wait)


def _record(settings: Settings, requests: list[DecisionRequest], source: str, lock_wait: float) -> int:
    with state_only(settings, lock_wait=lock_wait) as engine, write_transaction(engine) as connection:
        before = decision_store.count(connection)
        recorded = decision_file.record(connection, requests, source, time.time())
        added = decision_store.count(connection) - before
    for decision in recorded:
        _say(f"decision {decision.id}: {decision.kind} " + ", ".join(visible(c.path or c.content_hash) for c in decision.contents))
    if added < len(recorded):
        _say(f"{len(recorded) - added} of these were already in force")
    _say("the next scan (or the running service's) applies them; 'dupe-scanner decide list' lists them")
    return 0


def list_decisions(settings: Settings, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    with state_only(settings, lock_wait=lock_wait) as engine, read_transaction(engine) as connection:
        decisions = decision_store.load(connection).all
        where = {d.id: [_current_paths(connection, c.content_hash) for c in d.contents] for d in decisions}
    if not decisions:
        _say("no decisions yet ('dupe-scanner decide --help' says how to make one)")
    for decision in decisions:
        _say(_heading(decision))
        for content, paths in zip(decision.contents, where[decision.id], strict=True):
            _say(f"    {_whereabouts(content.path, paths)}")
    return 0


def _heading(decision: Decision) -> str:
    made = datetime.fromtimestamp(decision.made_at).strftime("%Y-%m-%d %H:%M")
    return f"{decision.id}: {decision.kind}, {made}, from {visible(decision.source)}"


def _current_paths(connection, content_hash: str) -> list[str]:
    return file_store.paths_of_content(connection, content_hash)


def _whereabouts(decided_on: str, now: list[str]) -> str:
    if not now:
        return f"{visible(decided_on or '(by content hash)')} (no indexed file holds it now)"
    if decided_on in now or not decided_on:
        return ", ".join(visible(path) for path in now)
    return ", ".join(visible(path) for path in now) + f" (decided on {visible(decided_on)})"


def undo_decision(settings: Settings, decision_id: int, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    with state_only(settings, lock_wait=lock_wait) as engine, write_transaction(engine) as connection:
        removed = decision_store.remove(connection, decision_id)
    if not removed:
        raise UsageError(f"there is no decision {decision_id}; 'dupe-scanner decide list' lists them")
    _say(f"decision {decision_id} undone; the next scan reports without it")
    return 0
