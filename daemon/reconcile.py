"""Reconcile: make the state agree with the disk, by stat alone (nothing is decoded).

Events from the watcher are hints; this walk is the truth. It runs at start, on a
schedule, whenever watching fails, and for ``index --dir``. "What differs between the disk
and the state" is the pure ``diff`` of two listings; ``walk`` and ``apply`` do the I/O.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from dupe_scanner.pathfilter import PathFilter
from dupe_scanner.store import files as file_store
from dupe_scanner.store.database import read_transaction, write_transaction
from dupe_scanner.store.files import FileStat

log = logging.getLogger(__name__)

APPLY_BATCH = 1000


@dataclass(frozen=True)
class Changes:
    new: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.new or self.changed or self.vanished)


@dataclass
class WalkResult:
    listing: dict[str, FileStat] = field(default_factory=dict)
    unreadable_folders: list[str] = field(default_factory=list)


def diff(disk: Mapping[str, FileStat], state: Mapping[str, FileStat]) -> Changes:
    """What the state must learn: files new on disk, changed (size or mtime), and vanished."""
    new = sorted(path for path in disk if path not in state)
    changed = sorted(path for path, stat in disk.items() if path in state and not stat.same_content_as(state[path]))
    vanished = sorted(path for path in state if path not in disk)
    return Changes(tuple(new), tuple(changed), tuple(vanished))


def walk(path_filter: PathFilter) -> WalkResult:
    """Every wanted image file below the filter's root, with its stat. Symlinks are not followed."""
    result = WalkResult()
    stack = [str(path_filter.root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    _visit(entry, path_filter, stack, result)
        except OSError as error:
            # An unreadable folder must not make its files look deleted: the caller keeps them.
            log.warning("cannot list %s: %s", folder, error.strerror or error)
            result.unreadable_folders.append(folder)
    return result


def _visit(entry: os.DirEntry, path_filter: PathFilter, stack: list[str], result: WalkResult) -> None:
    """One entry of a folder. Names that are not UTF-8 are paths like any other (the state keeps them)."""
    try:
        if entry.is_symlink():
            return
        if entry.is_dir():
            if path_filter.wants_folder(Path(entry.path)):
                stack.append(entry.path)
        elif entry.is_file() and path_filter.wants(entry.path):
            result.listing[entry.path] = FileStat.of(entry.stat())
    except OSError:
        pass  # vanished between listing and stat: it is simply not there


def reconcile(engine: Engine, path_filter: PathFilter, now: float | None = None, drop_unwanted: bool = False) -> Changes:
    """Walk ``path_filter.root`` and record what differs. Returns what changed.

    Only files within the filter's reach are compared (a walk that is not recursive says
    nothing of subfolders). ``drop_unwanted``: known files the filter now excludes leave
    the state too; for the service, whose watches own their folders, not for a one-off
    ``index --dir``.
    """
    started = time.time()
    now = started if now is None else now
    walked = walk(path_filter)
    root = str(path_filter.root)
    with read_transaction(engine) as connection:
        known = file_store.known_under(connection, root)
    in_reach = [path for path in known if path_filter.recursive or os.path.dirname(path) == root.rstrip("/")]
    state = {path: known[path].stat for path in in_reach if path_filter.wants(path)}
    unwanted = [path for path in in_reach if path not in state] if drop_unwanted else []
    changes = diff(walked.listing, state)
    vanished = [path for path in changes.vanished if not _inside_any(path, walked.unreadable_folders)]
    changes = Changes(changes.new, changes.changed, tuple(vanished))
    apply(engine, walked.listing, changes, unwanted, now, untouched_since=min(started, now))
    if changes or unwanted:
        log.info(
            "reconciled %s: %d new, %d changed, %d vanished",
            root, len(changes.new), len(changes.changed), len(changes.vanished) + len(unwanted),
        )
    return changes


def apply(
    engine: Engine, listing: Mapping[str, FileStat], changes: Changes, unwanted: list[str], now: float, untouched_since: float
) -> None:
    """Write the changes in batches, so a huge first walk does not hold the lock for long.

    Files seen or changed since ``untouched_since`` (the walk's start) are not marked gone:
    events recorded them while the walk ran, and they are newer than what it saw.
    """
    seen = [*changes.new, *changes.changed]
    for start in range(0, len(seen), APPLY_BATCH):
        with write_transaction(engine) as connection:
            for path in seen[start : start + APPLY_BATCH]:
                file_store.mark_seen(connection, path, listing[path], now)
    if changes.vanished or unwanted:
        with write_transaction(engine) as connection:
            file_store.mark_gone(connection, [*changes.vanished, *unwanted], now, untouched_since=untouched_since)


def _inside_any(path: str, folders: list[str]) -> bool:
    return any(path.startswith(folder.rstrip("/") + "/") for folder in folders)

