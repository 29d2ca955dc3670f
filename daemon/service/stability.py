"""When has a file stopped changing? A file still being copied must not be analysed yet.

A path is *settled* once no event has been seen for it for ``stable_seconds`` and its
size and mtime are what they were at the last event. A file that keeps changing without
events (a network share seen through polling, a writer that does not trigger inotify)
is caught by the second condition and waits another round.

Pure apart from the injected clock and stat, so tests drive time by hand. Not
thread-safe: one owner (the service's hint loop) calls it.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

Stat = Callable[[Path], os.stat_result]


@dataclass(frozen=True)
class Signature:
    size: int
    mtime_ns: int

    @staticmethod
    def of(result: os.stat_result) -> Signature:
        return Signature(result.st_size, result.st_mtime_ns)


@dataclass
class _Entry:
    last_event: float
    signature: Signature | None  # None: could not stat at the last event


@dataclass(frozen=True)
class Settled:
    stable: list[Path]  # unchanged for stable_seconds: ready to analyse
    vanished: list[Path]  # gone before they settled (a temp file, a cancelled copy)

    def __bool__(self) -> bool:
        return bool(self.stable or self.vanished)


class StabilityTracker:
    def __init__(
        self,
        stable_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        stat: Stat = os.stat,
    ):
        if stable_seconds < 0:
            raise ValueError("stable_seconds must not be negative")
        self.stable_seconds = stable_seconds
        self._clock = clock
        self._stat = stat
        # Ordered by last event, oldest first: poll() stops at the first entry not yet due.
        self._entries: OrderedDict[Path, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def touch(self, path: Path) -> None:
        """Something happened to ``path`` just now: (re)start its quiet period."""
        self._entries[path] = _Entry(self._clock(), self._signature(path))
        self._entries.move_to_end(path)

    def touch_all(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.touch(path)

    def rename(self, source: Path, destination: Path) -> None:
        """A tracked file was moved: keep waiting under its new name."""
        entry = self._entries.pop(source, None)
        if entry is not None:
            self.touch(destination)

    def forget(self, path: Path) -> None:
        self._entries.pop(path, None)

    def forget_under(self, folder: Path) -> None:
        """Stop tracking everything below ``folder`` (a folder deleted or no longer watched)."""
        for path in [p for p in self._entries if p == folder or folder in p.parents]:
            del self._entries[path]

    def set_stable_seconds(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("stable_seconds must not be negative")
        self.stable_seconds = seconds

    def next_due(self) -> float | None:
        """Clock time at which the oldest entry may settle, or None when nothing is tracked."""
        for entry in self._entries.values():
            return entry.last_event + self.stable_seconds
        return None

    def poll(self) -> Settled:
        """Hand out the paths that have settled; re-arm those that changed without an event."""
        now = self._clock()
        due = []
        for path, entry in self._entries.items():
            if now - entry.last_event < self.stable_seconds:
                break
            due.append(path)
        stable: list[Path] = []
        vanished: list[Path] = []
        for path in due:
            entry = self._entries[path]
            try:
                signature = Signature.of(self._stat(path))
            except (FileNotFoundError, NotADirectoryError):
                del self._entries[path]
                vanished.append(path)
                continue
            except OSError:
                # Cannot even stat it (permissions, I/O error): let the indexer try and
                # record the reason, rather than holding it here forever.
                del self._entries[path]
                stable.append(path)
                continue
            if signature == entry.signature:
                del self._entries[path]
                stable.append(path)
            else:
                entry.signature = signature
                entry.last_event = now
                self._entries.move_to_end(path)
        return Settled(stable, vanished)

    def _signature(self, path: Path) -> Signature | None:
        try:
            return Signature.of(self._stat(path))
        except OSError:
            return None
