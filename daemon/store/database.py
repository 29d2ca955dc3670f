"""Opening the state database: one engine, pragmas in one connect hook, migrations at start.

SQLite's Python driver manages transactions its own way, which breaks transactional DDL
and lets two writers deadlock on a lock upgrade. The hooks below take over: every
transaction starts with an explicit BEGIN, and ``write_transaction`` starts with BEGIN
IMMEDIATE so a writer waits (busy_timeout) for the lock instead of failing half-way.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

from dupe_scanner.errors import StateError
from dupe_scanner.store import LOCK_WAIT_SECONDS


def _migrations_folder() -> Path:
    """The installed ``daemon/migrations``, or the repository's ``migrations/`` in a checkout."""
    import dupe_scanner.migrations  # installed package (package-dir maps it to migrations/)

    return Path(dupe_scanner.migrations.__file__).resolve().parent


def open_state(path: Path, lock_wait: float = LOCK_WAIT_SECONDS) -> Engine:
    """Open (creating if needed) the state at ``path`` and upgrade its schema to the newest.

    ``lock_wait``: the seconds a unit of work waits for a lock another process holds."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StateError(f"cannot create the state folder {path.parent}: {error}") from None
    # URL.create, not an f-string: a '?' or '#' in the path must stay part of the file name.
    # The engine carries the wait, for the connect hook and for the words when it ran out.
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        connect_args={"timeout": lock_wait},
        execution_options={"lock_wait": lock_wait},
    )
    _install_hooks(engine)
    try:
        upgrade(engine)
    except (OperationalError, DBAPIError, sqlite3.Error) as error:
        engine.dispose()
        raise StateError(f"cannot open {describe_state_error(path, error, lock_wait)}") from None
    return engine


def lock_wait_of(engine: Engine) -> float:
    """The lock wait ``engine`` was opened with (see ``open_state``)."""
    return engine.get_execution_options().get("lock_wait", LOCK_WAIT_SECONDS)


def describe_state_error(path: Path, error: Exception, lock_wait: float = LOCK_WAIT_SECONDS) -> str:
    """One line on what went wrong with the state database at ``path`` and what to do about it."""
    original = getattr(error, "orig", None) or error
    name = getattr(original, "sqlite_errorname", "")
    text = str(original.args[0] if original.args else original)
    if name.startswith("SQLITE_FULL") or (name.startswith("SQLITE_IOERR") and _disk_full(path.parent)):
        why = "the disk is full; free some space and run again (what was done so far is kept)"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        why = (
            f"it stayed locked by another process for {lock_wait:g} s "
            "(the service, or another dupe-scanner command?); run again when that is done"
        )
    elif name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        why = f"{text}; it is left as it is: move it aside (or set [paths] state) to start a new state"
    elif name.startswith("SQLITE_READONLY"):
        why = f"{text}; the user running dupe-scanner needs write access to it and its folder"
    else:
        why = text
    return f"the state database {path}: {why}"


def _disk_full(folder: Path) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _install_hooks(engine: Engine) -> None:
    busy_timeout_ms = round(lock_wait_of(engine) * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed state
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection):
        mode = "IMMEDIATE" if connection.get_execution_options().get("write") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def state_errors(path: Path, lock_wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """The state database's errors (a lock held too long, a full disk) as ``StateError``:
    one line that says what to do, for the command line and the service's log alike."""
    try:
        yield
    except DBAPIError as error:
        raise StateError(describe_state_error(path, error, lock_wait)) from None


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One unit of work that writes: takes the write lock up front, commits on success."""
    with (
        state_errors(_state_path(engine), lock_wait_of(engine)),
        engine.connect().execution_options(write=True) as connection,
        connection.begin(),
    ):
        yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for reading (WAL readers never block the writer)."""
    with state_errors(_state_path(engine), lock_wait_of(engine)), engine.connect() as connection, connection.begin():
        yield connection


def _state_path(engine: Engine) -> Path:
    """The file of a state ``open_state`` opened: its URL always names one."""
    if engine.url.database is None:
        raise TypeError(f"{engine.url!r} names no database file")
    return Path(engine.url.database)


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_migrations_folder()))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(_migrations_folder()))
    return ScriptDirectory.from_config(config).get_current_head()
