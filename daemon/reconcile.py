"""Reconcile: make the state agree with the disk, by stat alone (nothing is decoded).

Events from the watcher are hints; this walk is the truth. It runs at start, on a
schedule, whenever watching fails, and for ``index --dir``. "What differs between the disk
and the state" is the pure ``diff`` of two listings; ``walk`` and ``apply`` do the I/O.

At a million files the listings are most of the memory a walk takes, so ``reconcile``
holds one: the state's, a path and its (size, mtime) each. The disk's files are compared
with it as the walk finds them, and only those new or changed are kept (``sift``): a walk
over an unchanged library holds no stat of it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
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


Signature = tuple[int, int]  # FileStat.signature: (size, mtime_ns)


def diff(disk: Mapping[str, FileStat], state: Mapping[str, FileStat]) -> Changes:
    """What the state must learn: files new on disk, changed (size or mtime), and vanished."""
    _, changes = sift(disk.items(), {path: stat.signature for path, stat in state.items()})
    return changes


def sift(disk: Iterable[tuple[str, FileStat]], known: dict[str, Signature]) -> tuple[dict[str, FileStat], Changes]:
    """``diff`` as the disk is listed: the stats of the files new or changed, and the changes.

    ``known`` (the state's files) is consumed: a file found on disk leaves it, so what is left
    at the end has vanished. An unchanged file is dropped as soon as it is found.
    """
    found: dict[str, FileStat] = {}
    new: list[str] = []
    changed: list[str] = []
    for path, stat in disk:
        before = known.pop(path, None)
        if before is None:
            new.append(path)
        elif before != stat.signature:
            changed.append(path)
        else:
            continue
        found[path] = stat
    return found, Changes(tuple(sorted(new)), tuple(sorted(changed)), tuple(sorted(known)))


def walk(path_filter: PathFilter) -> WalkResult:
    """Every wanted image file below the filter's root, with its stat. Symlinks are not followed."""
    result = WalkResult()
    result.listing.update(walk_files(path_filter, result.unreadable_folders))
    return result


def walk_files(path_filter: PathFilter, unreadable_folders: list[str]) -> Iterator[tuple[str, FileStat]]:
    """``walk``'s files one at a time; each folder that cannot be listed is added to ``unreadable_folders``."""
    stack = [str(path_filter.root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    found = _visit(entry, path_filter, stack)
                    if found is not None:
                        yield entry.path, found
        except OSError as error:
            # An unreadable folder must not make its files look deleted: the caller keeps them.
            log.warning("cannot list %s: %s", folder, error.strerror or error)
            unreadable_folders.append(folder)


def _visit(entry: os.DirEntry, path_filter: PathFilter, stack: list[str]) -> FileStat | None:
    """One entry of a folder: its stat if it is a wanted file; a wanted folder goes on ``stack``.
    Names that are not UTF-8 are paths like any other (the state keeps them)."""
    try:
        if entry.is_symlink():
            return None
        if entry.is_dir():
            if path_filter.wants_folder(Path(entry.path)):
                stack.append(entry.path)
        elif entry.is_file() and path_filter.wants(entry.path):
            return FileStat.of(entry.stat())
    except OSError:
        pass  # vanished between listing and stat: it is simply not there
    return None


def reconcile(engine: Engine, path_filter: PathFilter, now: float | None = None, drop_unwanted: bool = False) -> Changes:
    """Walk ``path_filter.root`` and record what differs. Returns what changed.

    Only files within the filter's reach are compared (a walk that is not recursive says
    nothing of subfolders). ``drop_unwanted``: known files the filter now excludes leave
    the state too; for the service, whose watches own their folders, not for a one-off
    ``index --dir``.
    """
    started = time.time()
    now = started if now is None else now
    root = str(path_filter.root)
    known: dict[str, Signature] = {}
    unwanted: list[str] = []
    with read_transaction(engine) as connection:
        for path, size, mtime_ns in file_store.signatures_under(connection, root):
            if not (path_filter.recursive or os.path.dirname(path) == root.rstrip("/")):
                continue
            if path_filter.wants(path):
                known[path] = (size, mtime_ns)
            elif drop_unwanted:
                unwanted.append(path)
    unreadable: list[str] = []
    listing, changes = sift(walk_files(path_filter, unreadable), known)
    del known
    vanished = [path for path in changes.vanished if not _inside_any(path, unreadable)]
    changes = Changes(changes.new, changes.changed, tuple(vanished))
    apply(engine, listing, changes, unwanted, now, untouched_since=min(started, now))
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

