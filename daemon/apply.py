"""``apply`` and ``undo``: set aside the files your decisions and the keep rules leave out.

Only groups with a keep decision are acted on (a suggestion alone never moves a file).
In those, every file not protected (the keep, files you decided to keep, files in a
preferred folder, RAW + JPEG companions) moves to ``--move-to`` under its path relative
to its watched folder. Each file is checked first: it must be as it was indexed (size,
modification time, and its bytes hashed again), and so must the file kept. A journal in
the state folder records each move before it happens (see ``journal``); ``undo`` puts
the last apply back, finishing any move a crash interrupted.

Nothing here runs from the service: only a person running ``apply`` moves files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from dupe_scanner import journal
from dupe_scanner.composition import backend_compares_every_pair, state_only
from dupe_scanner.display import visible
from dupe_scanner.errors import UsageError
from dupe_scanner.groups import DuplicateGroup
from dupe_scanner.indexer import content_hash
from dupe_scanner.keep import KeepChoice
from dupe_scanner.relocate import MoveRefused, move_file, restore
from dupe_scanner.reports.json_report import group_id
from dupe_scanner.scanning import current_groups
from dupe_scanner.settings import Settings
from dupe_scanner.store import LOCK_WAIT_SECONDS
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import read_transaction, write_transaction


@dataclass(frozen=True)
class Move:
    source: Path
    destination: Path
    content_hash: str


@dataclass(frozen=True)
class GroupPlan:
    id: str
    keep: KeepChoice
    moves: tuple[Move, ...]


def _say(text: str) -> None:
    """One line of output; the file names in it shown as ``status`` shows them (``caf\\xe9.jpg``)."""
    print(visible(text), flush=True)


def journal_folder(settings: Settings) -> Path:
    return settings.paths.state.parent / "journal"


def plan(groups: Sequence[DuplicateGroup], move_to: Path, roots: Sequence[Path]) -> list[GroupPlan]:
    """What apply would do: for each decided group, its keep and the files to move."""
    plans = []
    for index, group in enumerate(groups):
        review = group.reviewed
        if not review.decided:
            continue
        moves = tuple(
            Move(Path(member.path), destination_for(Path(member.path), move_to, roots), member.content_hash)
            for member in review.removable(group.members)
        )
        plans.append(GroupPlan(group_id(index), review.keep, moves))
    return plans


def destination_for(source: Path, move_to: Path, roots: Sequence[Path]) -> Path:
    """``move_to`` / the path below the watched folder holding ``source`` (or below /)."""
    root = next((root for root in roots if root in source.parents), Path(source.anchor))
    return move_to / source.relative_to(root)


def apply(settings: Settings, move_to: Path, dry_run: bool, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    move_to = move_to.expanduser().absolute()
    roots = [watch.path for watch in settings.watch]
    inside = next((root for root in roots if root == move_to or root in move_to.parents), None)
    if inside is not None:
        raise UsageError(f"--move-to {move_to} is inside the watched folder {inside}; choose a folder outside it")
    with state_only(settings, lock_wait=lock_wait) as engine:
        groups, _ = current_groups(
            engine, settings.scan.threshold, backend_compares_every_pair(settings), keep=settings.keep
        )
        plans = plan(groups, move_to, roots)
        left_alone = sum(1 for group in groups if not group.reviewed.decided)
        refused = _dry_run(plans) if dry_run else _carry_out(engine, plans, move_to, journal_folder(settings))
    if left_alone:
        _say(f"left alone: {left_alone} groups without a keep decision ('dupe-scanner decide keep PATH' decides one)")
    return 1 if refused else 0


def _dry_run(plans: list[GroupPlan]) -> int:
    for group in plans:
        _say(f"{group.id}: keep {group.keep.path} ({group.keep.reason})")
        for move in group.moves:
            _say(f"  would move {move.source} -> {move.destination}")
    _say(f"dry run: {sum(len(g.moves) for g in plans)} files would be moved; nothing was changed")
    return 0


def _carry_out(engine: Engine, plans: list[GroupPlan], move_to: Path, folder: Path) -> int:
    if not any(group.moves for group in plans):
        _say("nothing to move")
        return 0
    writer = journal.JournalWriter(folder)
    writer.write("apply", move_to=str(move_to), journal=str(writer.path))
    moved: list[str] = []
    refused = 0
    try:
        for group in plans:
            _say(f"{group.id}: keep {group.keep.path} ({group.keep.reason})")
            problem = _unchanged(engine, Path(group.keep.path))
            if problem:
                _say(f"  nothing moved in this group: the file to keep {problem}")
                refused += len(group.moves)
                continue
            for move in group.moves:
                problem = _unchanged(engine, move.source, move.content_hash)
                if problem:
                    _say(f"  refused {move.source}: it {problem}")
                    refused += 1
                    continue
                writer.write("intent", source=str(move.source), destination=str(move.destination), content_hash=move.content_hash)
                try:
                    how = move_file(move.source, move.destination, move.content_hash)
                except MoveRefused as error:
                    _say(f"  refused: {error}")
                    refused += 1
                    continue
                writer.write("done", source=str(move.source), how=how)
                moved.append(str(move.source))
                _say(f"  moved {move.source} -> {move.destination}")
        writer.write("finished", moved=len(moved), refused=refused)
    finally:
        writer.close()
        _forget_moved(engine, moved)
    _say(f"moved {len(moved)} files, refused {refused}; 'dupe-scanner undo' puts them back (journal {writer.path})")
    return refused


def _unchanged(engine: Engine, path: Path, expected_hash: str | None = None) -> str | None:
    """None when ``path`` is as it was indexed; else what changed, in words."""
    with read_transaction(engine) as connection:
        known = file_store.get_by_path(connection, str(path))
    try:
        stat = os.stat(path, follow_symlinks=False)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if known is None or known.content_hash is None:
        return "is not indexed"
    if stat.st_size != known.stat.size or stat.st_mtime_ns != known.stat.mtime_ns:
        return "changed since it was indexed (size or time); index it again first"
    if content_hash(path) != (expected_hash or known.content_hash):
        return "changed since it was indexed (its bytes); index it again first"
    return None


def _forget_moved(engine: Engine, paths: list[str]) -> None:
    """Moved files leave the reports now, not at the next walk of their folder."""
    if paths:
        with write_transaction(engine) as connection:
            file_store.mark_gone(connection, paths, time.time())


def undo(settings: Settings) -> int:
    folder = journal_folder(settings)
    last = journal.last_journal(folder)
    if last is None:
        _say(f"nothing to undo: no apply journal in {folder}")
        return 0
    problems = 0
    for intent in reversed(journal.read_intents(last)):
        try:
            what = restore(intent.source, intent.destination, intent.content_hash)
            _say(f"{what}: {intent.source}")
        except MoveRefused as error:
            _say(f"not put back: {error}")
            problems += 1
    if problems:
        _say(f"{problems} files could not be put back; fix what is said above and run 'dupe-scanner undo' again")
        return 1
    journal.mark_undone(last)
    _say(f"undone: {last}; 'dupe-scanner index --dir FOLDER' (or the running service) sees the files again")
    return 0
