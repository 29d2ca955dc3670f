"""Live configuration: ``settings.toml`` edits take effect without a restart.

The folder holding the file is watched, not the file: editors save by writing a new
file and renaming it over the old one, which ends a watch on the file itself. A slow
stat check (size, mtime, inode) backs the watch up, for a settings file on a network
share or behind a symlink that is swapped (configuration management, ConfigMaps).
SIGHUP asks for a reload too (the service's signal handler calls :meth:`request`).

A burst of events (write, rename, chmod) is read once, after ``debounce`` seconds of
quiet. An invalid file is logged problem by problem (file, key, reason) and the
service keeps the last good settings; a valid one that differs from them is handed to
``on_change``. A file that parses to the same settings changes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from dupe_scanner.errors import SettingsError
from dupe_scanner.settings import Settings, load_settings

log = logging.getLogger(__name__)

CHANGED = "changed"
UNCHANGED = "unchanged"
INVALID = "invalid"


class ReloadNotifier(Protocol):
    def reloading(self, status: str | None = None) -> bool: ...

    def ready(self, status: str | None = None) -> bool: ...


@dataclass(frozen=True)
class ReloadOutcome:
    result: str  # changed, unchanged, invalid
    reason: str  # what asked for the reload: "SIGHUP", "settings.toml changed", ...
    settings: Settings  # the settings in force afterwards
    problems: tuple[str, ...] = ()


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        result = os.stat(path)
    except OSError:
        return None
    return (result.st_mtime_ns, result.st_size, result.st_ino)


class _FolderHandler(FileSystemEventHandler):
    def __init__(self, names: set[str], trigger: Callable[[str], None]):
        self.names = names
        self.trigger = trigger

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        if any(os.path.basename(os.fsdecode(p)) in self.names for p in paths if p):
            self.trigger(f"{os.fsdecode(event.src_path)} {event.event_type}")


class ConfigReloader:
    def __init__(
        self,
        path: Path,
        current: Settings,
        on_change: Callable[[Settings, Settings], None],
        *,
        load: Callable[[Path], Settings] = load_settings,
        notifier: ReloadNotifier | None = None,
        debounce: float = 0.5,
        poll_seconds: float = 5.0,
    ):
        self.path = path
        self._settings = current
        self._on_change = on_change
        self._load = load
        self._notifier = notifier
        self._debounce = debounce
        self._poll_seconds = poll_seconds
        self._requested = threading.Event()
        self._reasons: list[str] = []
        self._force = False
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one reload at a time
        self._life = threading.Lock()  # start and stop one at a time
        self._fingerprint = _fingerprint(path)
        self._observer: BaseObserver | None = None  # Observer: the best kind this system has
        self._thread: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        """The last good settings."""
        return self._settings

    def start(self) -> None:
        """Start watching (again, if the worker thread died: the folder watch is kept); once
        stopped, never again: the heartbeat may find the thread gone while the service stops."""
        with self._life:
            if self._stop.is_set():
                return
            if self._observer is None or not self._observer.is_alive():
                self._watch_folder()
            self._thread = threading.Thread(target=self._run, name="config-reload", daemon=True)
            self._thread.start()

    def _watch_folder(self) -> None:
        folder = self.path.resolve().parent if self.path.exists() else self.path.absolute().parent
        names = {self.path.name, self.path.resolve().name}
        try:
            observer = Observer()
            observer.schedule(_FolderHandler(names, self._event_seen), str(folder), recursive=False)
            observer.start()
            self._observer = observer
        except OSError as error:
            self._observer = None
            log.warning(
                "cannot watch %s for edits (%s); checking it every %gs instead",
                folder, error.strerror or error, self._poll_seconds,
            )

    def request(self, reason: str = "SIGHUP") -> None:
        """Ask for a reload soon, even if the file looks unchanged. Async-signal friendly:
        it only appends to a list and sets an event."""
        self._force = True
        self._reasons.append(reason)
        self._requested.set()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        with self._life:
            self._stop.set()
            self._requested.set()
            observer, thread = self._observer, self._thread
            self._observer = None
        if observer is not None:
            observer.stop()
            observer.join(5)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def reload(self, reason: str) -> ReloadOutcome:
        """Read the file now; keep the last good settings if it is invalid."""
        with self._lock:
            self._fingerprint = _fingerprint(self.path)
            if self._notifier is not None:
                self._notifier.reloading(f"reloading settings ({reason})")
            try:
                outcome = self._reload_locked(reason)
            finally:
                if self._notifier is not None:
                    self._notifier.ready()
            return outcome

    def _reload_locked(self, reason: str) -> ReloadOutcome:
        try:
            new = self._load(self.path)
        except SettingsError as error:
            for problem in error.problems:
                log.error("%s: %s", error.source, problem)
            log.error(
                "settings not reloaded (%s): %d problem%s in %s; still running on the last good settings",
                reason, len(error.problems), "" if len(error.problems) == 1 else "s", error.source,
            )
            return ReloadOutcome(INVALID, reason, self._settings, tuple(error.problems))
        if new == self._settings:
            log.info("settings reloaded (%s): nothing changed", reason)
            return ReloadOutcome(UNCHANGED, reason, new)
        old, self._settings = self._settings, new
        log.info("settings reloaded (%s): applying the changes", reason)
        try:
            self._on_change(old, new)
        except Exception:
            log.exception("applying the new settings failed part-way")
        return ReloadOutcome(CHANGED, reason, new)

    # The worker ----------------------------------------------------------------------

    def _event_seen(self, what: str) -> None:
        self._reasons.append(f"{self.path.name} changed")
        self._requested.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            triggered = self._requested.wait(self._poll_seconds)
            if self._stop.is_set():
                return
            if triggered:
                # Let a burst of events (write, rename, chmod) settle first.
                self._requested.clear()
                while self._requested.wait(self._debounce) and not self._stop.is_set():
                    self._requested.clear()
                if self._stop.is_set():
                    return
                reasons, self._reasons = self._reasons, []
                force, self._force = self._force, False
                reason = ", ".join(dict.fromkeys(reasons)) or "settings changed"
                if force or _fingerprint(self.path) != self._fingerprint:
                    self._safe_reload(reason)
            elif _fingerprint(self.path) != self._fingerprint:
                self._safe_reload(f"{self.path.name} changed")

    def _safe_reload(self, reason: str) -> None:
        try:
            self.reload(reason)
        except Exception:  # the reload thread must outlive a bug in one reload
            log.exception("reloading the settings failed")
