"""Settings: ``settings.toml`` parsed once into frozen, typed objects.

Loading reports every problem at once, each with its key path (``watch[1].path: ...``),
so one edit can fix them all. Nothing else in the program reads TOML or the environment.
Relative paths count from the settings file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dupe_scanner.errors import SettingsError

DEFAULT_LOCATIONS = (Path("settings.toml"), Path("/etc/dupe-scanner/settings.toml"))

BACKEND_KINDS = ("embedded", "flow")
SCAN_MODES = ("balanced", "speed")
LOG_LEVELS = ("debug", "info", "warning", "error")

# Hidden and system clutter that no one wants reported as a duplicate.
DEFAULT_EXCLUDES = (
    "**/.thumbnails/**",
    "**/@eaDir/**",
    "**/#recycle/**",
    "**/#snapshot/**",
    "**/.stversions/**",
    "**/.stfolder/**",
    "**/.Trash-*/**",
    "**/Thumbs.db",
    "**/.DS_Store",
    "**/._*",
    "**/*.part",
    "**/*.crdownload",
    "**/*.tmp",
    "**/*.download",
)


# Every key a settings file may hold, by table: the reader refuses any other, and a test
# checks that settings.toml and the README document each one.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "watch": ("path", "recursive", "include", "exclude", "default_excludes", "polling", "poll_interval"),
    "paths": ("state", "reports"),
    "backend": ("kind", "flow"),
    "backend.flow": ("url", "collection", "connect_timeout", "read_timeout", "retries", "commit_every", "thumbnail_size"),
    "scan": ("threshold", "schedule", "mode", "debounce_seconds"),
    "index": ("workers", "stable_seconds", "max_attempts", "retry_base_seconds", "max_image_pixels", "reconcile"),
    "report": ("html_max_nodes", "thumbnail_size"),
    "keep": ("preferred_folders", "preferred_formats"),
    "log": ("level",),
}


@dataclass(frozen=True)
class WatchSettings:
    path: Path
    recursive: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    use_default_excludes: bool = True
    polling: str = "auto"  # "auto" | "always" | "never"
    poll_interval: float = 30.0

    @property
    def all_excludes(self) -> tuple[str, ...]:
        return (DEFAULT_EXCLUDES if self.use_default_excludes else ()) + self.exclude


@dataclass(frozen=True)
class FlowSettings:
    url: str = "http://localhost:8983"
    collection: str = "my-collection"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retries: int = 3
    commit_every: int = 100
    thumbnail_size: int = 350


@dataclass(frozen=True)
class BackendSettings:
    kind: str = "embedded"
    flow: FlowSettings = field(default_factory=FlowSettings)


@dataclass(frozen=True)
class Schedule:
    """When a recurring job runs: every ``interval_seconds``, or by a five-field ``cron``."""

    text: str
    interval_seconds: float | None = None
    cron: str | None = None


@dataclass(frozen=True)
class ScanSettings:
    threshold: float = 0.6
    schedule: Schedule = field(default_factory=lambda: parse_schedule("interval:15m"))
    mode: str = "balanced"
    debounce_seconds: float = 10.0


@dataclass(frozen=True)
class IndexSettings:
    workers: int = 0  # 0: one per core
    stable_seconds: float = 5.0
    max_attempts: int = 5
    retry_base_seconds: float = 30.0
    max_image_pixels: int = 250_000_000
    reconcile: Schedule = field(default_factory=lambda: parse_schedule("interval:1h"))

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ReportSettings:
    html_max_nodes: int = 2000
    thumbnail_size: int = 160


@dataclass(frozen=True)
class KeepSettings:
    """The keep rules' preferences, before most pixels, largest file, oldest (see ``dupe_scanner.keep``)."""

    preferred_folders: tuple[Path, ...] = ()  # files here are never suggested for removal
    preferred_formats: tuple[str, ...] = ()  # upper case, most preferred first: ("DNG", "PNG", "JPEG")


@dataclass(frozen=True)
class PathSettings:
    state: Path
    reports: Path


@dataclass(frozen=True)
class Settings:
    source: Path | None
    paths: PathSettings
    watch: tuple[WatchSettings, ...] = ()
    backend: BackendSettings = field(default_factory=BackendSettings)
    scan: ScanSettings = field(default_factory=ScanSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    keep: KeepSettings = field(default_factory=KeepSettings)
    log_level: str = "info"


def find_settings_file(explicit: Path | None) -> Path | None:
    """The file to load: ``--config``, else ./settings.toml, else /etc/dupe-scanner/settings.toml."""
    if explicit is not None:
        return explicit
    for candidate in DEFAULT_LOCATIONS:
        if candidate.is_file():
            return candidate
    return None


def load_settings(path: Path | None) -> Settings:
    """Read and validate a settings file; ``None`` gives the built-in defaults."""
    if path is None:
        return parse_settings({}, base_dir=Path.cwd(), source=None)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(str(path), [f"cannot be read: {error}"]) from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(str(path), [f"not valid TOML: {error}"]) from None
    return parse_settings(raw, base_dir=path.resolve().parent, source=path)


def parse_settings(raw: dict[str, Any], base_dir: Path, source: Path | None) -> Settings:
    reader = _Reader(base_dir)
    settings = reader.settings(raw)
    if reader.problems:
        raise SettingsError(str(source or "settings"), reader.problems)
    return Settings(source=source, **settings)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?]+$")


def parse_schedule(text: str) -> Schedule:
    """``interval:15m`` (s, m, h, d) or ``cron:0 3 * * *`` / a bare five-field cron expression."""
    kind, _, rest = text.partition(":")
    if kind.strip() == "interval":
        match = _DURATION.match(rest)
        if not match or float(match.group(1)) <= 0:
            raise ValueError(f"'{text}': an interval is a positive number with s, m, h or d, e.g. interval:15m")
        return Schedule(text, interval_seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    cron = rest if kind.strip() == "cron" else text
    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(f"'{text}': expected interval:DURATION or a five-field cron expression")
    from apscheduler.triggers.cron import CronTrigger

    CronTrigger.from_crontab(" ".join(fields))  # raises ValueError on a bad field
    return Schedule(text, cron=" ".join(fields))


class _Reader:
    """Walks the raw TOML, collecting every problem instead of stopping at the first."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.problems: list[str] = []

    def problem(self, key: str, why: str) -> None:
        self.problems.append(f"{key}: {why}")

    def table(self, raw: dict, key: str) -> dict:
        allowed = set(KNOWN_KEYS[key])
        value = raw.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return {}
        for unknown in sorted(set(value) - allowed):
            self.problem(f"{key}.{unknown}", f"unknown key (known: {', '.join(sorted(allowed))})")
        return value

    def value(self, raw: dict, key: str, kind: type | tuple, default: Any, check: Callable | None = None) -> Any:
        name = key.rsplit(".", 1)[-1]
        if name not in raw:
            return default
        value = raw[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.problem(key, f"must be {' or '.join(k.__name__ for k in kinds)}, not {type(value).__name__}")
            return default
        if check is not None:
            why = check(value)
            if why:
                self.problem(key, why)
                return default
        return value

    def path(self, raw: dict, key: str, default: str) -> Path:
        text = self.value(raw, key, str, default, lambda v: "must not be empty" if not v.strip() else None)
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def schedule(self, raw: dict, key: str, default: str) -> Schedule:
        text = self.value(raw, key, str, default)
        try:
            return parse_schedule(text)
        except ValueError as error:
            self.problem(key, str(error))
            return parse_schedule(default)

    def globs(self, raw: dict, key: str) -> tuple[str, ...]:
        value = self.value(raw, key, list, [])
        if not all(isinstance(item, str) and item for item in value):
            self.problem(key, "must be a list of non-empty glob strings")
            return ()
        return tuple(value)

    def settings(self, raw: dict) -> dict:
        known = {section for section in KNOWN_KEYS if "." not in section}
        for unknown in sorted(set(raw) - known):
            self.problem(unknown, f"unknown section (known: {', '.join(sorted(known))})")
        return {
            "paths": self.paths(raw),
            "watch": self.watches(raw),
            "backend": self.backend(raw),
            "scan": self.scan(raw),
            "index": self.index(raw),
            "report": self.report(raw),
            "keep": self.keep(raw),
            "log_level": self.log(raw),
        }

    def paths(self, raw: dict) -> PathSettings:
        table = self.table(raw, "paths")
        return PathSettings(
            state=self.path(table, "paths.state", "state/state.db"),
            reports=self.path(table, "paths.reports", "reports"),
        )

    def watches(self, raw: dict) -> tuple[WatchSettings, ...]:
        entries = raw.get("watch", [])
        if not isinstance(entries, list):
            self.problem("watch", "must be an array of tables: write [[watch]] for each folder")
            return ()
        watches = []
        allowed = set(KNOWN_KEYS["watch"])
        for index, entry in enumerate(entries):
            key = f"watch[{index}]"
            if not isinstance(entry, dict):
                self.problem(key, "must be a table")
                continue
            for unknown in sorted(set(entry) - allowed):
                self.problem(f"{key}.{unknown}", f"unknown key (known: {', '.join(sorted(allowed))})")
            if "path" not in entry:
                self.problem(f"{key}.path", "is required")
                continue
            watches.append(
                WatchSettings(
                    # Resolved once here, so the service, the CLI and the state all spell a
                    # file the same way even when the folder is reached through a symlink.
                    path=self.path(entry, f"{key}.path", ".").resolve(),
                    recursive=self.value(entry, f"{key}.recursive", bool, True),
                    include=self.globs(entry, f"{key}.include"),
                    exclude=self.globs(entry, f"{key}.exclude"),
                    use_default_excludes=self.value(entry, f"{key}.default_excludes", bool, True),
                    polling=self.polling(entry, f"{key}.polling"),
                    poll_interval=self.value(entry, f"{key}.poll_interval", (int, float), 30.0, _positive),
                )
            )
        self.check_distinct_watches(watches)
        return tuple(watches)

    def polling(self, raw: dict, key: str) -> str:
        value = self.value(raw, key, (str, bool), "auto")
        if value is True:
            return "always"
        if value is False:
            return "never"
        if value != "auto":
            self.problem(key, 'must be "auto", true or false')
            return "auto"
        return value

    def check_distinct_watches(self, watches: list[WatchSettings]) -> None:
        """Two watches must not cover the same files: each would undo the other's excludes."""
        for index, watch in enumerate(watches):
            for other_index, other in enumerate(watches[:index]):
                if watch.path == other.path:
                    self.problem(f"watch[{index}].path", f"same folder as watch[{other_index}].path")
                elif other.recursive and other.path in watch.path.parents:
                    self.problem(f"watch[{index}].path", f"inside watch[{other_index}].path, which already watches it")
                elif watch.recursive and watch.path in other.path.parents:
                    self.problem(f"watch[{other_index}].path", f"inside watch[{index}].path, which already watches it")

    def backend(self, raw: dict) -> BackendSettings:
        table = self.table(raw, "backend")
        kind = self.value(table, "backend.kind", str, "embedded", _one_of(BACKEND_KINDS))
        flow = self.table(table, "backend.flow")
        defaults = FlowSettings()
        return BackendSettings(
            kind=kind,
            flow=FlowSettings(
                url=self.value(flow, "backend.flow.url", str, defaults.url, _http_url).rstrip("/"),
                collection=self.value(flow, "backend.flow.collection", str, defaults.collection, _collection_name),
                connect_timeout=self.value(flow, "backend.flow.connect_timeout", (int, float), 5.0, _positive),
                read_timeout=self.value(flow, "backend.flow.read_timeout", (int, float), 60.0, _positive),
                retries=self.value(flow, "backend.flow.retries", int, 3, _at_least(0)),
                commit_every=self.value(flow, "backend.flow.commit_every", int, 100, _at_least(1)),
                thumbnail_size=self.value(flow, "backend.flow.thumbnail_size", int, 350, _at_least(32)),
            ),
        )

    def scan(self, raw: dict) -> ScanSettings:
        table = self.table(raw, "scan")
        return ScanSettings(
            threshold=float(self.value(table, "scan.threshold", (int, float), 0.6, _score)),
            schedule=self.schedule(table, "scan.schedule", "interval:15m"),
            mode=self.value(table, "scan.mode", str, "balanced", _one_of(SCAN_MODES)),
            debounce_seconds=float(self.value(table, "scan.debounce_seconds", (int, float), 10.0, _at_least(0))),
        )

    def index(self, raw: dict) -> IndexSettings:
        table = self.table(raw, "index")
        return IndexSettings(
            workers=self.value(table, "index.workers", int, 0, _at_least(0)),
            stable_seconds=float(self.value(table, "index.stable_seconds", (int, float), 5.0, _at_least(0))),
            max_attempts=self.value(table, "index.max_attempts", int, 5, _at_least(1)),
            retry_base_seconds=float(self.value(table, "index.retry_base_seconds", (int, float), 30.0, _positive)),
            max_image_pixels=self.value(table, "index.max_image_pixels", int, 250_000_000, _at_least(1)),
            reconcile=self.schedule(table, "index.reconcile", "interval:1h"),
        )

    def report(self, raw: dict) -> ReportSettings:
        table = self.table(raw, "report")
        return ReportSettings(
            html_max_nodes=self.value(table, "report.html_max_nodes", int, 2000, _at_least(2)),
            thumbnail_size=self.value(table, "report.thumbnail_size", int, 160, _at_least(16)),
        )

    def keep(self, raw: dict) -> KeepSettings:
        table = self.table(raw, "keep")
        folders = self.value(table, "keep.preferred_folders", list, [])
        if not all(isinstance(item, str) and item.strip() for item in folders):
            self.problem("keep.preferred_folders", "must be a list of folder paths")
            folders = []
        formats = self.value(table, "keep.preferred_formats", list, [])
        if not all(isinstance(item, str) and item.strip() for item in formats):
            self.problem("keep.preferred_formats", 'must be a list of format names, e.g. ["DNG", "PNG", "JPEG"]')
            formats = []
        return KeepSettings(
            # Resolved as the watches are, so a file's path in the state lies below its folder.
            preferred_folders=tuple(self._absolute(Path(folder).expanduser()).resolve() for folder in folders),
            preferred_formats=tuple(name.strip().upper() for name in formats),
        )

    def _absolute(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base_dir / path

    def log(self, raw: dict) -> str:
        table = self.table(raw, "log")
        return self.value(table, "log.level", str, "info", _one_of(LOG_LEVELS))


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _at_least(minimum: int) -> Callable[[float], str | None]:
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def _score(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be a score between 0 (exclusive) and 1, e.g. 0.6 (near) or 0.9 (exact)"


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}, not '{value}'"


def _http_url(value: str) -> str | None:
    return None if re.match(r"^https?://[^/\s]+", value) else f"'{value}' is not an http:// or https:// URL"


def _collection_name(value: str) -> str | None:
    return None if re.match(r"^[A-Za-z0-9._-]+$", value) else "may hold only letters, digits, '.', '_' and '-'"
