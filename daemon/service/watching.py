"""Watching the ``[[watch]]`` folders: filesystem events become *hints*, nothing more.

Events are hints and the state is the truth. The handler here never touches the
database: it turns each watchdog event into a :class:`Hint` (changed, deleted, moved,
or "rescan this folder, events were lost") for the paths the folder's
:class:`~dupe_scanner.pathfilter.PathFilter` wants, and hands it to a callback. The service
decides what to do with it.

One observer per folder, so that one folder can fall back to polling without the
others, and a dead thread costs one folder a restart:

- inotify (``polling = "auto"`` or ``"never"``) for local filesystems;
- polling every ``poll_interval`` seconds when ``polling = "always"``, when the folder
  is on a network or FUSE filesystem (``auto``; inotify cannot see changes made by
  another machine), or when the inotify watch or instance limit is reached;
  each such decision is logged once, with the reason.

:meth:`Watcher.check` is the health check: it restarts observers whose threads died,
starts folders that appeared, switches a folder to polling when inotify ran out of
watches for a new subfolder, and asks for a rescan whenever events may have been lost
(a restart, a fallback, the kernel's queue overflow).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from dupe_scanner.pathfilter import PathFilter
from dupe_scanner.service import mounts
from dupe_scanner.settings import WatchSettings

try:  # inotify exists on Linux only; elsewhere every folder is polled.
    from watchdog.observers.inotify import InotifyEmitter, InotifyObserver
    from watchdog.observers.inotify_c import InotifyEvent, InotifyFD
except (ImportError, OSError):  # pragma: no cover - not Linux
    InotifyFD = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

CHANGED = "changed"
DELETED = "deleted"
MOVED = "moved"
RESCAN = "rescan"

LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)

NATIVE = "inotify"
POLLING = "polling"
MISSING = "missing"  # the folder does not exist (yet): checked again by check()
UNWATCHED = "unwatched"  # polling = "never" and inotify failed: the reconcile walk is all there is

# How long stop() waits for one observer's threads.
JOIN_SECONDS = 5.0
# A first polling snapshot slower than this may have missed changes: a rescan follows.
SLOW_SNAPSHOT_SECONDS = 2.0


@dataclass(frozen=True)
class Hint:
    """Something may have happened at ``path`` (below the watched folder ``root``).

    ``changed``: created, written or touched; ``deleted``: gone (a folder when
    ``is_directory``: everything below it); ``moved``: now at ``destination``;
    ``rescan``: events for ``root`` were lost, walk it.
    """

    kind: str
    root: Path
    path: Path
    destination: Path | None = None
    is_directory: bool = False

    @property
    def moved_to(self) -> Path:
        """A ``moved`` hint's ``destination``."""
        if self.destination is None:
            raise ValueError(f"a {self.kind} hint for {self.path} has no destination")
        return self.destination


HintSink = Callable[[Hint], None]


def hints_for_event(event: FileSystemEvent, path_filter: PathFilter) -> list[Hint]:
    """The hints one watchdog event gives, for the paths ``path_filter`` wants."""
    root = path_filter.root
    source = Path(os.fsdecode(event.src_path))
    kind = event.event_type
    if event.is_directory:
        if source == root:
            return []  # the folder itself: check() notices it is gone
        if kind == EVENT_TYPE_DELETED and path_filter.wants_folder(source):
            return [Hint(DELETED, root, source, is_directory=True)]
        if kind == EVENT_TYPE_MOVED:
            destination = Path(os.fsdecode(event.dest_path)) if event.dest_path else None
            source_wanted = path_filter.wants_folder(source)
            destination_wanted = destination is not None and path_filter.wants_folder(destination)
            if source_wanted and destination_wanted:
                return [Hint(MOVED, root, source, destination, is_directory=True)]
            if source_wanted:
                return [Hint(DELETED, root, source, is_directory=True)]
            # Moved in from an excluded folder: the contents arrive as file events.
        return []
    if kind in (EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_CLOSED, EVENT_TYPE_ATTRIB):
        return [Hint(CHANGED, root, source)] if path_filter.wants(source) else []
    if kind == EVENT_TYPE_DELETED:
        return [Hint(DELETED, root, source)] if path_filter.wants(source) else []
    if kind == EVENT_TYPE_MOVED:
        destination = Path(os.fsdecode(event.dest_path)) if event.dest_path else None
        if destination is not None and not path_filter.wants(destination):
            destination = None  # moved out of what is watched: as good as gone
        if path_filter.wants(source):
            return [Hint(MOVED, root, source, destination)] if destination is not None else [Hint(DELETED, root, source)]
        if destination is not None:
            return [Hint(CHANGED, root, destination)]  # e.g. photo.jpg.part -> photo.jpg
    return []  # opened, closed without writing


def path_filter_for(watch: WatchSettings) -> PathFilter:
    return PathFilter(root=watch.path, include=watch.include, exclude=watch.all_excludes, recursive=watch.recursive)


class HintHandler(FileSystemEventHandler):
    """Feeds the hints of every event to the sink; a failure is logged, never raised
    (an exception here would kill the observer's dispatch thread)."""

    def __init__(self, path_filter: PathFilter, sink: HintSink):
        self.path_filter = path_filter
        self.sink = sink

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            for hint in hints_for_event(event, self.path_filter):
                self.sink(hint)
        except Exception:
            log.exception("cannot handle %s event for %s", event.event_type, event.src_path)


if InotifyFD is not None:

    class LimitAwareInotifyFD(InotifyFD):
        """An inotify instance that remembers hitting the watch limit and reports overflows.

        watchdog skips subfolders it cannot watch without a word (only the folder itself
        raises), and handles the kernel's queue overflow internally without telling the
        event handler. Both mean lost events, so both are surfaced here.
        """

        def __init__(self, on_overflow: Callable[[], None]):
            super().__init__()
            self.limit_error: OSError | None = None
            self._on_overflow = on_overflow

        def add_callback(self, path, mask, callback, id_):
            try:
                return super().add_callback(path, mask, callback, id_)
            except OSError as error:
                if error.errno in LIMIT_ERRNOS and self.limit_error is None:
                    self.limit_error = error
                raise

        def handle_event(self, event: InotifyEvent) -> None:
            super().handle_event(event)
            if event.is_queue_overflow:
                self._on_overflow()

    class NativeObserver(InotifyObserver):
        """watchdog's InotifyObserver on an inotify instance of our choosing."""

        def __init__(self, inotify_fd: LimitAwareInotifyFD, *, timeout: float = 1.0):
            # Held twice: watchdog stops its ``_inotify_fd`` with the observer, and types it
            # as a plain (from 7.1.1, optional) InotifyFD, which knows no watch limit.
            self._limit_aware_fd = inotify_fd
            self._inotify_fd = inotify_fd
            inotify_fd.start()
            BaseObserver.__init__(self, InotifyEmitter, timeout=timeout, inotify_fd=inotify_fd)

        @property
        def limit_error(self) -> OSError | None:
            return self._limit_aware_fd.limit_error

        def abandon(self) -> None:
            """Release the inotify instance of an observer that never started."""
            self._limit_aware_fd.stop()
            self._limit_aware_fd.join(JOIN_SECONDS)

else:  # pragma: no cover
    LimitAwareInotifyFD = None  # type: ignore[assignment,misc]
    NativeObserver = None  # type: ignore[assignment,misc]


@dataclass
class _Folder:
    settings: WatchSettings
    mode: str = MISSING
    reason: str = ""
    observer: BaseObserver | None = None
    overflowed: bool = False
    restarts: int = 0
    starting: threading.Event | None = None  # set while a polling observer takes its first snapshot


@dataclass(frozen=True)
class FolderStatus:
    path: str
    mode: str  # inotify, polling, missing, unwatched
    reason: str  # why polling / why not watched, "" for plain inotify


@dataclass(frozen=True)
class WatchChanges:
    added: tuple[WatchSettings, ...] = ()
    removed: tuple[WatchSettings, ...] = ()
    changed: tuple[WatchSettings, ...] = ()  # same folder, other options: restarted, needs a walk

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass
class Health:
    healthy: bool = True  # every folder that can be watched is (threads alive)
    restarted: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def inotify_limits() -> str:
    """The kernel limits, for the log line that says a limit was hit."""
    values = []
    for name in ("max_user_watches", "max_user_instances"):
        with contextlib.suppress(OSError):
            values.append(f"fs.inotify.{name}={Path('/proc/sys/fs/inotify', name).read_text().strip()}")
    return ", ".join(values)


class Watcher:
    """The observers of all ``[[watch]]`` folders; apply() and check() from one thread at a time."""

    def __init__(
        self,
        sink: HintSink,
        *,
        mountinfo: Callable[[], str] = mounts.read_mountinfo,
        inotify_fd_factory: Callable[[Callable[[], None]], LimitAwareInotifyFD] | None = None,
        observer_timeout: float = 1.0,
    ):
        self._sink = sink
        self._mountinfo = mountinfo
        self._inotify_fd_factory = inotify_fd_factory or LimitAwareInotifyFD
        self._observer_timeout = observer_timeout
        self._folders: dict[Path, _Folder] = {}
        self._lock = threading.RLock()

    # Configuration ---------------------------------------------------------------

    def apply(self, watches: Iterable[WatchSettings]) -> WatchChanges:
        """Watch exactly these folders: start new ones, stop removed ones, restart changed ones."""
        wanted = {watch.path: watch for watch in watches}
        with self._lock:
            removed = [folder.settings for path, folder in self._folders.items() if path not in wanted]
            changed = [w for p, w in wanted.items() if p in self._folders and self._folders[p].settings != w]
            added = [w for p, w in wanted.items() if p not in self._folders]
            for watch in removed:
                self._stop_folder(self._folders.pop(watch.path))
                log.info("stopped watching %s", watch.path)
            for watch in changed:
                folder = self._folders[watch.path]
                self._stop_folder(folder)
                self._folders[watch.path] = folder = _Folder(watch)
                self._start_folder(folder)
            for watch in added:
                folder = self._folders[watch.path] = _Folder(watch)
                self._start_folder(folder)
        return WatchChanges(tuple(added), tuple(removed), tuple(changed))

    @property
    def folders(self) -> list[WatchSettings]:
        with self._lock:
            return [folder.settings for folder in self._folders.values()]

    def status(self) -> list[FolderStatus]:
        with self._lock:
            return [FolderStatus(str(path), f.mode, f.reason) for path, f in self._folders.items()]

    # Health ----------------------------------------------------------------------

    def check(self) -> Health:
        """Repair what can be repaired; say whether every watchable folder is watched."""
        health = Health()
        with self._lock:
            for path, folder in self._folders.items():
                if folder.overflowed:  # the rescan was asked for when it happened
                    folder.overflowed = False
                    log.warning("%s: the kernel's event queue overflowed, events were lost; rescanning", path)
                if folder.starting is not None:
                    continue  # still taking its first snapshot
                if folder.mode in (NATIVE, POLLING):
                    self._check_running(folder, health)
                elif folder.mode == MISSING and path.is_dir():
                    log.info("%s exists now", path)
                    self._start_folder(folder)
                    if folder.mode in (NATIVE, POLLING):
                        self._rescan(folder)
                if folder.mode in (NATIVE, POLLING) and folder.starting is None and not _alive(folder.observer):
                    health.healthy = False
                    health.problems.append(f"{path}: watch threads are not running")
        return health

    def _check_running(self, folder: _Folder, health: Health) -> None:
        path = folder.settings.path
        observer = folder.observer
        limit = getattr(observer, "limit_error", None)
        if folder.mode == NATIVE and limit is not None:
            self._stop_folder(folder)
            self._fall_back(folder, limit)
            self._rescan(folder)
            return
        if _alive(observer):
            return
        self._stop_folder(folder)
        if not path.is_dir():
            log.warning("%s is gone or not a folder; watching it again once it is back", path)
            folder.mode, folder.reason = MISSING, "folder not found"
            self._rescan(folder)
            return
        folder.restarts += 1
        log.warning("%s: the watch threads stopped; restarting them (restart %d)", path, folder.restarts)
        self._start_folder(folder)
        health.restarted.append(path)
        self._rescan(folder)

    def _rescan(self, folder: _Folder) -> None:
        root = folder.settings.path
        self._deliver(Hint(RESCAN, root, root))

    def _deliver(self, hint: Hint) -> None:
        try:
            self._sink(hint)
        except Exception:
            log.exception("cannot deliver %s hint for %s", hint.kind, hint.path)

    # Starting and stopping ---------------------------------------------------------

    def _start_folder(self, folder: _Folder) -> None:
        watch = folder.settings
        if not watch.path.is_dir():
            folder.mode, folder.reason = MISSING, "folder not found"
            log.warning("%s: folder not found; watching it once it exists", watch.path)
            return
        if watch.polling == "always":
            self._start_polling(folder, "polling = true in the settings")
            return
        if watch.polling == "auto":
            mount = mounts.filesystem_of(watch.path, self._mountinfo())
            if mount is not None and mount.is_network:
                self._start_polling(folder, f"on {mount.fstype} ({mount.source}), where inotify misses remote changes")
                return
        if self._inotify_fd_factory is None:  # pragma: no cover - not Linux
            self._start_polling(folder, "inotify is not available on this system")
            return
        try:
            self._start_native(folder)
        except OSError as error:
            if error.errno in LIMIT_ERRNOS:
                self._fall_back(folder, error)
            else:
                folder.mode, folder.reason = MISSING, f"cannot watch: {error.strerror or error}"
                log.warning("%s: cannot watch (%s); trying again later", watch.path, error.strerror or error)

    def _start_native(self, folder: _Folder) -> None:
        watch = folder.settings
        handler = HintHandler(path_filter_for(watch), self._sink)
        inotify_fd = self._inotify_fd_factory(lambda: self._overflowed(folder))
        observer = NativeObserver(inotify_fd, timeout=self._observer_timeout)
        try:
            observer.schedule(handler, str(watch.path), recursive=watch.recursive)
            observer.start()
            if observer.limit_error is not None:
                raise observer.limit_error
        except BaseException:
            _stop_observer(observer)
            raise
        folder.observer, folder.mode, folder.reason = observer, NATIVE, ""
        log.info("watching %s (inotify%s)", watch.path, ", recursive" if watch.recursive else "")

    def _start_polling(self, folder: _Folder, reason: str) -> None:
        """Start polling in the background: the first snapshot walks the whole tree, which on
        a large share takes minutes, and must hold up neither READY nor the heartbeat."""
        watch = folder.settings
        handler = HintHandler(path_filter_for(watch), self._sink)
        observer = PollingObserver(timeout=watch.poll_interval)
        observer.schedule(handler, str(watch.path), recursive=watch.recursive)
        starting = threading.Event()
        folder.observer, folder.mode, folder.reason, folder.starting = observer, POLLING, reason, starting
        log.info("watching %s by polling every %gs: %s", watch.path, watch.poll_interval, reason)

        def start() -> None:
            began = time.monotonic()
            try:
                observer.start()  # takes the first snapshot
            except OSError as error:
                log.warning("%s: cannot poll (%s); trying again later", watch.path, error.strerror or error)
            finally:
                with self._lock:
                    if folder.observer is not observer:  # stopped or replaced meanwhile
                        _stop_observer(observer)
                    elif folder.starting is starting:
                        folder.starting = None
                starting.set()
            if observer.is_alive() and time.monotonic() - began > SLOW_SNAPSHOT_SECONDS:
                # Changes made while the first snapshot was taken may be in neither it nor
                # the start-up walk: walk once more.
                self._deliver(Hint(RESCAN, watch.path, watch.path))

        threading.Thread(target=start, name=f"poll-start {watch.path.name}", daemon=True).start()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until every polling observer has taken its first snapshot (tests, benchmarks)."""
        with self._lock:
            pending = [folder.starting for folder in self._folders.values() if folder.starting is not None]
        return all(event.wait(timeout) for event in pending)

    def _fall_back(self, folder: _Folder, error: OSError) -> None:
        watch = folder.settings
        what = "watch" if error.errno == errno.ENOSPC else "instance"
        limits = inotify_limits()
        limits = f" ({limits})" if limits else ""
        if watch.polling == "never":
            folder.mode = UNWATCHED
            folder.reason = f"inotify {what} limit reached and polling = false"
            log.error(
                "%s: inotify %s limit reached%s and polling = false: changes are seen only by the "
                "reconcile walk (index.reconcile); raise the limit or allow polling",
                watch.path, what, limits,
            )
            return
        self._start_polling(folder, f"inotify {what} limit reached{limits}; raise it for instant events")

    def _stop_folder(self, folder: _Folder) -> None:
        if folder.observer is not None:
            if folder.starting is None:
                _stop_observer(folder.observer)
            # else: the starting thread sees it was dropped and stops it when its snapshot ends
            folder.observer = None
            folder.starting = None

    def _overflowed(self, folder: _Folder) -> None:
        # Runs on the inotify thread: only flag it, and ask for a walk at once.
        folder.overflowed = True
        self._deliver(Hint(RESCAN, folder.settings.path, folder.settings.path))

    def stop(self) -> None:
        with self._lock:
            for folder in self._folders.values():
                self._stop_folder(folder)
            self._folders.clear()


def _alive(observer: BaseObserver | None) -> bool:
    if observer is None or not observer.is_alive():
        return False
    emitters = observer.emitters
    return bool(emitters) and all(emitter.is_alive() for emitter in emitters)


def _stop_observer(observer: BaseObserver) -> None:
    if observer.is_alive():
        observer.stop()
        observer.join(JOIN_SECONDS)
        if observer.is_alive():
            log.warning("an observer thread did not stop within %gs", JOIN_SECONDS)
    else:
        # Never started (or already dead): stop what it may hold.
        for emitter in list(observer.emitters):
            emitter.stop()
        abandon = getattr(observer, "abandon", None)
        if abandon is not None:
            abandon()
