"""Settings: ``settings.toml`` parsed once into frozen, typed objects.

Each key is declared once, as a field of the dataclass that holds it: ``setting(...)``
gives its default (as written in the file), the TOML types it accepts, its check, how it
becomes the typed value, and the one line that documents it. The reader below walks
those declarations; ``dupe_scanner.settings_docs`` writes the commented settings.toml and
the README's table from them.

Loading reports every problem at once, each with its key path (``watch[1].path: ...``),
so one edit can fix them all. Nothing else in the program reads TOML or the environment.
Relative paths count from the settings file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

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


# The declarations ----------------------------------------------------------------------

REQUIRED = object()  # a key without a default: the file must give it


@dataclass(frozen=True)
class Setting:
    """One key: everything the reader and the documentation know of it."""

    doc: str  # what it is and why one would change it: the README's "meaning", the sample's comment
    default: Any  # as written in settings.toml (REQUIRED: none)
    accepts: tuple[type, ...]  # the TOML types it may have
    check: Callable[[Any], str | None] | None = None  # the problem with a value of the right type, or None
    convert: Callable[[Any, Path], Any] | None = None  # (value, the settings file's folder) -> typed value; ValueError: a problem
    name: str | None = None  # the key, where it is not the attribute's name ("log.level": in the [log] table)
    example: Any = REQUIRED  # shown in the sample instead of the default (for a required key)
    relative: bool = False  # the typed default depends on the settings file's folder: the dataclass has none
    restart: bool = False  # the running service applies a change at its next restart only (its RESTART_NEEDED)

    def typed(self, value: Any, base_dir: Path) -> Any:
        return value if self.convert is None else self.convert(value, base_dir)


@dataclass(frozen=True)
class Section:
    """A table of keys (``[backend.flow]``), or an array of them (``[[watch]]``)."""

    of: type  # the dataclass its keys are declared on
    doc: str = ""  # the comment above it in the sample (as it is: not in the README)
    array: bool = False


def setting(doc: str, default: Any = REQUIRED, accepts: type | tuple[type, ...] = str, **options: Any) -> Any:
    """A dataclass field declaring one key; its default is the typed form of ``default``."""
    declaration = Setting(doc, default, accepts if isinstance(accepts, tuple) else (accepts,), **options)
    metadata = {"setting": declaration}
    if default is REQUIRED or declaration.relative:
        return field(metadata=metadata)
    return field(default=declaration.typed(default, Path()), metadata=metadata)


def section(of: type, doc: str = "", *, array: bool = False) -> Any:
    """A dataclass field holding a table of keys (or an array of tables, ``array``)."""
    metadata = {"section": Section(of, doc, array)}
    if array:
        return field(default=(), metadata=metadata)
    if all(f.default is not MISSING or f.default_factory is not MISSING for f in fields(of)):
        return field(default_factory=of, metadata=metadata)
    return field(metadata=metadata)


# The checks and conversions the declarations use.


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


def _not_empty(value: str) -> str | None:
    return "must not be empty" if not value.strip() else None


def _list_of_text(why: str) -> Callable[[list], str | None]:
    """A list of strings, none of them blank."""
    return lambda value: None if all(isinstance(item, str) and item.strip() for item in value) else why


def _globs(value: list) -> str | None:
    return None if all(isinstance(item, str) and item for item in value) else "must be a list of non-empty glob strings"


def _as_float(value: float, base_dir: Path) -> float:
    return float(value)


def _as_tuple(value: list, base_dir: Path) -> tuple:
    return tuple(value)


def _absolute(path: str, base_dir: Path) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base_dir / expanded


def _resolved(path: str, base_dir: Path) -> Path:
    # Resolved once here, so the service, the CLI and the state all spell a file the same
    # way even when its folder is reached through a symlink.
    return _absolute(path, base_dir).resolve()


def _schedule(text: str, base_dir: Path) -> Schedule:
    return parse_schedule(text)


def _polling(value: str | bool, base_dir: Path) -> str:
    if value is True:
        return "always"
    if value is False:
        return "never"
    if value != "auto":
        raise ValueError('must be "auto", true or false')
    return value


def _flow_url(value: str, base_dir: Path) -> str:
    return value.rstrip("/")


def _formats(value: list, base_dir: Path) -> tuple[str, ...]:
    return tuple(name.strip().upper() for name in value)


def _folders(value: list, base_dir: Path) -> tuple[Path, ...]:
    # Resolved as the watches are, so a file's path in the state lies below its folder.
    return tuple(_resolved(folder, base_dir) for folder in value)


def number(doc: str, default: float, check: Callable[[float], str | None] | None = None, **options: Any) -> Any:
    """A number of seconds, a score...: an int or a float in the file, a float in the settings."""
    return setting(doc, default, (int, float), check=check, convert=_as_float, **options)


def integer(doc: str, default: int, minimum: int, **options: Any) -> Any:
    return setting(doc, default, int, check=_at_least(minimum), **options)


def choice(doc: str, default: str, choices: tuple[str, ...], **options: Any) -> Any:
    return setting(doc, default, str, check=_one_of(choices), **options)


def schedule(doc: str, default: str) -> Any:
    return setting(doc, default, str, convert=_schedule)


# Schedules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When a recurring job runs: every ``interval_seconds``, or by a five-field ``cron``."""

    text: str
    interval_seconds: float | None = None
    cron: str | None = None


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


# The settings, key by key --------------------------------------------------------------


@dataclass(frozen=True)
class WatchSettings:
    path: Path = setting(
        "the folder to watch; one `[[watch]]` table per folder",
        convert=_resolved, check=_not_empty, example="/srv/photos",
    )
    recursive: bool = setting("also watch its subfolders", True, bool)
    include: tuple[str, ...] = setting(
        "globs (relative to the folder) of files to index; empty: every image", [], list,
        check=_globs, convert=_as_tuple,
    )
    exclude: tuple[str, ...] = setting(
        'globs to leave out, on top of the default excludes, e.g. `["**/raw/**"]`', [], list,
        check=_globs, convert=_as_tuple,
    )
    use_default_excludes: bool = setting(
        "leave out `.thumbnails`, `@eaDir`, `#recycle`, `#snapshot`, `.stversions`, `.stfolder`, "
        "`Thumbs.db`, `.DS_Store`, `._*`, `*.part`, `*.crdownload`, `*.tmp` and similar clutter",
        True, bool, name="default_excludes",
    )
    polling: str = setting(
        '`"auto"` polls network filesystems (nfs, cifs, sshfs and other fuse mounts) and folders '
        "past the inotify watch limit; `true` always polls; `false` never",
        "auto", (str, bool), convert=_polling,
    )
    poll_interval: float = number("seconds between polls, when polling", 30, _positive)

    @property
    def all_excludes(self) -> tuple[str, ...]:
        return (DEFAULT_EXCLUDES if self.use_default_excludes else ()) + self.exclude


@dataclass(frozen=True)
class PathSettings:
    state: Path = setting(
        "the SQLite state (for the systemd service: `/var/lib/dupe-scanner/state.db`)",
        "state/state.db", check=_not_empty, convert=_absolute, relative=True, restart=True,
    )
    reports: Path = setting(
        "the folder the reports are written to (for the service: `/var/lib/dupe-scanner/reports`)",
        "reports", check=_not_empty, convert=_absolute, relative=True,
    )


@dataclass(frozen=True)
class FlowSettings:
    url: str = setting(
        "the Flow 5 (Solr) base URL", "http://localhost:8983", check=_http_url, convert=_flow_url, restart=True,
    )
    collection: str = setting(
        "the Flow collection (core) to use", "my-collection", check=_collection_name, restart=True,
    )
    connect_timeout: float = number("seconds to wait for a connection to Flow", 5, _positive, restart=True)
    read_timeout: float = number("seconds to wait for Flow's answer", 60, _positive, restart=True)
    retries: int = integer("retries on connection errors and 5xx answers, with backoff", 3, 0, restart=True)
    commit_every: int = integer("new documents are made searchable after this many", 100, 1, restart=True)
    thumbnail_size: int = integer(
        "long side in pixels of the image uploaded to Flow for analysis", 350, 32, restart=True,
    )


@dataclass(frozen=True)
class BackendSettings:
    kind: str = choice('`"embedded"` (no server needed) or `"flow"` (a Flow 5 server)', "embedded", BACKEND_KINDS, restart=True)
    flow: FlowSettings = section(FlowSettings, "Flow's server, when kind = \"flow\".")


@dataclass(frozen=True)
class ScanSettings:
    threshold: float = number(
        "minimum score of a duplicate pair: 0.9 exact duplicates only, 0.6 near duplicates too", 0.6, _score,
    )
    schedule: Schedule = schedule(
        "when the service rescans: `interval:` with s, m, h or d (`interval:15m`), "
        "or a cron expression (`cron:0 3 * * *`)",
        "interval:15m",
    )
    mode: str = choice('Flow only: `"balanced"` or `"speed"` (approximate search sooner)', "balanced", SCAN_MODES)
    debounce_seconds: float = number(
        "the service rescans this long after a burst of changes settles", 5, _at_least(0),
    )


@dataclass(frozen=True)
class IndexSettings:
    workers: int = integer("analysis workers; 0: one per CPU core", 0, 0)
    stable_seconds: float = number(
        "a file is analysed once its size and time stayed unchanged this long (still being copied?)", 5, _at_least(0),
    )
    max_attempts: int = integer(
        "attempts before a file whose analysis keeps failing is marked failed (a backend that is down uses none)",
        5, 1,
    )
    retry_base_seconds: float = number("the first retry delay, doubled at each further attempt", 30, _positive)
    max_image_pixels: int = integer("larger images are refused (decompression bombs)", 250_000_000, 1)
    reconcile: Schedule = schedule(
        "how often the service walks the folders to catch what events missed", "interval:1h",
    )

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ReportSettings:
    html_max_nodes: int = integer(
        "at most this many images per HTML page; further groups go to `duplicates-2.html` and on; "
        "the JSON has all",
        2000, 2,
    )
    thumbnail_size: int = integer("long side in pixels of the thumbnails in `duplicates.html`", 160, 16)


@dataclass(frozen=True)
class KeepSettings:
    """The keep rules' preferences, before most pixels, largest file, oldest (see ``dupe_scanner.keep``)."""

    preferred_folders: tuple[Path, ...] = setting(
        "folders (reference copies) whose files are never suggested for removal, e.g. "
        '`["/srv/photos/originals"]` (relative: from the settings file\'s folder); '
        "the first of the [keep rules](#keep-rules)",
        [], list, check=_list_of_text("must be a list of folder paths"), convert=_folders,
    )
    preferred_formats: tuple[str, ...] = setting(  # upper case, most preferred first: ("DNG", "PNG", "JPEG")
        'formats to keep first, most preferred first, e.g. `["DNG", "HEIF", "PNG", "JPEG"]`; '
        "then most pixels, largest file, oldest. RAW + JPEG pairs of one shot are never suggested for removal",
        [], list, check=_list_of_text('must be a list of format names, e.g. ["DNG", "PNG", "JPEG"]'), convert=_formats,
    )


@dataclass(frozen=True, kw_only=True)
class Settings:
    source: Path | None  # the file read; None: the built-in defaults
    watch: tuple[WatchSettings, ...] = section(
        WatchSettings, "One [[watch]] table per folder the service keeps an eye on (`index --dir` needs none).", array=True,
    )
    paths: PathSettings = section(PathSettings)
    backend: BackendSettings = section(BackendSettings)
    scan: ScanSettings = section(ScanSettings)
    index: IndexSettings = section(IndexSettings)
    report: ReportSettings = section(ReportSettings)
    keep: KeepSettings = section(KeepSettings)
    log_level: str = choice("`debug`, `info`, `warning` or `error`", "info", LOG_LEVELS, name="log.level")


@dataclass(frozen=True)
class Declared:
    """A key as the documentation lists it: ``key`` its full path, ``table`` its table."""

    key: str  # "backend.flow.url", "watch.path", "log.level"
    table: str  # "backend.flow", "watch", "log"
    name: str  # "url"
    setting: Setting
    array: bool  # the table is an array of tables ([[watch]])
    section: Section | None  # the table's declaration (None: the [log] table, named by a dotted key)


def declared(of: type | None = None, prefix: str = "", array: bool = False, owner: Section | None = None) -> Iterator[Declared]:
    """Every key, in declaration order (the sample's and the README's order)."""
    for item in fields(Settings if of is None else of):
        if "section" in item.metadata:
            inner: Section = item.metadata["section"]
            yield from declared(inner.of, f"{prefix}{item.name}.", inner.array, inner)
        elif "setting" in item.metadata:
            decl: Setting = item.metadata["setting"]
            key = prefix + (decl.name or item.name)
            table, _, name = key.rpartition(".")
            yield Declared(key, table, name, decl, array, owner if table == prefix[:-1] else None)


def _key_names(of: type) -> dict[str, list[str]]:
    """The keys a table of ``of`` may hold -> the keys each holds in turn, for keys that
    are tables themselves (a section, or a dotted key's table)."""
    names: dict[str, list[str]] = {}
    for item in fields(of):
        if "section" in item.metadata:
            names[item.name] = []
        elif "setting" in item.metadata:
            head, _, rest = (item.metadata["setting"].name or item.name).partition(".")
            names.setdefault(head, [])
            if rest:
                names[head].append(rest)
    return names


# Loading -------------------------------------------------------------------------------


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
    values = reader.table(raw, Settings, "")
    reader.check_distinct_watches(values["watch"])
    if reader.problems:
        raise SettingsError(str(source or "settings"), reader.problems)
    return Settings(source=source, **values)


class _Reader:
    """Walks the raw TOML along the declarations, collecting every problem instead of
    stopping at the first."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.problems: list[str] = []

    def problem(self, key: str, why: str) -> None:
        self.problems.append(f"{key}: {why}")

    def table(self, raw: dict, of: type, key: str) -> dict[str, Any]:
        """The values of ``of``'s fields from the table ``raw`` (at ``key``; "" the file)."""
        names = _key_names(of)
        self.unknown(raw, names, key)
        subtables: dict[str, dict] = {}  # the tables of dotted keys ("log" for "log.level")
        values: dict[str, Any] = {}
        for item in fields(of):
            if "section" in item.metadata:
                values[item.name] = self.section(raw, item.metadata["section"], f"{key}.{item.name}".lstrip("."))
            elif "setting" in item.metadata:
                decl: Setting = item.metadata["setting"]
                name = decl.name or item.name
                within, head = raw, ""
                if "." in name:
                    head, _, name = name.partition(".")
                    if head not in subtables:
                        subtables[head] = self.subtable(raw, head, f"{key}.{head}".lstrip("."))
                        self.unknown(subtables[head], {n: [] for n in names[head]}, f"{key}.{head}".lstrip("."))
                    within = subtables[head]
                values[item.name] = self.value(within, name, ".".join(p for p in (key, head, name) if p), decl)
        return values

    def unknown(self, raw: dict, names: dict[str, list[str]], key: str) -> None:
        what = "key" if key else "section"
        for unknown in sorted(set(raw) - set(names)):
            self.problem(f"{key}.{unknown}".lstrip("."), f"unknown {what} (known: {', '.join(sorted(names))})")

    def subtable(self, raw: dict, name: str, key: str) -> dict:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return {}
        return value

    def section(self, raw: dict, section: Section, key: str) -> Any:
        if not section.array:
            return section.of(**self.table(self.subtable(raw, key.rpartition(".")[2], key), section.of, key))
        entries = raw.get(key.rpartition(".")[2], [])
        if not isinstance(entries, list):
            self.problem(key, f"must be an array of tables: write [[{key}]] for each folder")
            return ()
        items = []
        for index, entry in enumerate(entries):
            at = f"{key}[{index}]"
            if not isinstance(entry, dict):
                self.problem(at, "must be a table")
                continue
            required = [
                item.metadata["setting"].name or item.name
                for item in fields(section.of)
                if "setting" in item.metadata and item.metadata["setting"].default is REQUIRED
            ]
            missing = [name for name in required if name not in entry]
            if missing:
                self.unknown(entry, _key_names(section.of), at)
                for name in missing:
                    self.problem(f"{at}.{name}", "is required")
                continue
            values = self.table(entry, section.of, at)
            if all(values[name] is not None for name in required):
                items.append(section.of(**values))
        return tuple(items)

    def value(self, raw: dict, name: str, key: str, decl: Setting) -> Any:
        """The typed value of one key; on a problem, its default (or None if it has none)."""
        fallback = None if decl.default is REQUIRED else decl.default
        if name not in raw:
            return None if fallback is None else decl.typed(fallback, self.base_dir)
        value = raw[name]
        kinds = decl.accepts
        why = None
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            why = f"must be {' or '.join(k.__name__ for k in kinds)}, not {type(value).__name__}"
        elif decl.check is not None:
            why = decl.check(value)
        if why is None:
            try:
                return decl.typed(value, self.base_dir)
            except ValueError as error:
                why = str(error)
        self.problem(key, why)
        return None if fallback is None else decl.typed(fallback, self.base_dir)

    def check_distinct_watches(self, watches: tuple[WatchSettings, ...]) -> None:
        """Two watches must not cover the same files: each would undo the other's excludes."""
        for index, watch in enumerate(watches):
            for other_index, other in enumerate(watches[:index]):
                if watch.path == other.path:
                    self.problem(f"watch[{index}].path", f"same folder as watch[{other_index}].path")
                elif other.recursive and other.path in watch.path.parents:
                    self.problem(f"watch[{index}].path", f"inside watch[{other_index}].path, which already watches it")
                elif watch.recursive and watch.path in other.path.parents:
                    self.problem(f"watch[{other_index}].path", f"inside watch[{index}].path, which already watches it")
