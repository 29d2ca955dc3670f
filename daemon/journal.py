"""The apply journal: JSON lines in the state folder, each flushed to disk before its step.

One file per ``apply``, named by its start time::

    {"event": "apply", "move_to": "/mnt/aside", "started_at": 1764526800.0}
    {"event": "intent", "source": "/photos/b.jpg", "destination": "/mnt/aside/b.jpg", "content_hash": "..."}
    {"event": "done", "source": "/photos/b.jpg", "how": "linked"}
    {"event": "finished", "moved": 1, "refused": 0}

An intent is written before its file moves, so after a crash every file is where it was or
where an intent says; ``undo`` reads every intent, done or not. A last line cut short by
the crash is ignored. An undone journal is renamed ``*.jsonl.undone``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dupe_scanner.errors import UsageError
from dupe_scanner.fileio import fsync_folder

PREFIX = "apply-"
SUFFIX = ".jsonl"
UNDONE_SUFFIX = ".undone"


@dataclass(frozen=True)
class Intent:
    source: Path
    destination: Path
    content_hash: str
    done: bool


class JournalWriter:
    """Appends events, each on disk (fsync) before the call returns."""

    def __init__(self, folder: Path, now: float | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else time.time()))
        self.path = _free_name(folder, stamp)
        # A name that is not UTF-8 holds lone surrogates (b"caf\xe9" is "caf\udce9"), which
        # backslashreplace writes as the JSON escape \udce9; reading gives the same name back.
        self._file = open(self.path, "x", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - open until close()
        fsync_folder(folder)

    def write(self, event: str, **fields: Any) -> None:
        self._file.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _free_name(folder: Path, stamp: str) -> Path:
    """A new journal's name; a sequence number keeps two applies in one second apart and in order."""
    for sequence in range(1000):
        candidate = folder / f"{PREFIX}{stamp}-{sequence:03d}{SUFFIX}"
        if not candidate.exists() and not candidate.with_name(candidate.name + UNDONE_SUFFIX).exists():
            return candidate
    raise UsageError(f"{folder}: too many journals in one second")


def last_journal(folder: Path) -> Path | None:
    """The newest journal not undone yet, or None."""
    if not folder.is_dir():
        return None
    journals = sorted(folder.glob(f"{PREFIX}*{SUFFIX}"))
    return journals[-1] if journals else None


def read_intents(path: Path) -> list[Intent]:
    """Every file the apply meant to move, in order, each marked done or not."""
    intents: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the last line, cut short by a crash
        if event.get("event") == "intent":
            intents[event["source"]] = event
        elif event.get("event") == "done":
            done.add(event["source"])
    return [
        Intent(Path(e["source"]), Path(e["destination"]), e["content_hash"], e["source"] in done) for e in intents.values()
    ]


def mark_undone(path: Path) -> Path:
    undone = path.with_name(path.name + UNDONE_SUFFIX)
    path.rename(undone)
    fsync_folder(path.parent)
    return undone
