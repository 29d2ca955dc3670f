"""Helpers for the service's tests: a real NOTIFY_SOCKET, waiting for conditions."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dupe_scanner.service.processes import descendants, kill_all

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class NotifySocket:
    """A datagram socket standing in for systemd's notification socket.

    ``address`` is what goes into NOTIFY_SOCKET (a path, or ``@name`` when abstract);
    every datagram received is parsed into a dict and kept in ``messages``.
    """

    def __init__(self, folder: Path | None = None, abstract: bool = False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"dupe-scanner-test-{os.getpid()}-{id(self)}"
            self.sock.bind(b"\0" + name.encode())
            self.address = "@" + name
        else:
            assert folder is not None
            path = folder / "notify.sock"
            path.unlink(missing_ok=True)  # left by an earlier run in the same folder (a bench's library)
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.raw.append(data)
                self.messages.append(fields)

    def snapshot(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.messages)

    def with_key(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        return [m for m in self.snapshot() if key in m and (value is None or m[key] == value)]

    def wait_for(self, key: str, value: str | None = None, timeout: float = 20.0, count: int = 1) -> dict[str, str]:
        found = wait_for(lambda: len(self.with_key(key, value)) >= count, timeout, what=f"{key}={value or '*'} x{count}")
        assert found
        return self.with_key(key, value)[count - 1]

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


# Images ------------------------------------------------------------------------------------


def smooth_image(seed: int, size: tuple[int, int] = (96, 72)):
    """A small, distinct picture that survives resizing and recompression (a blown-up
    random 8x6 colour grid). Quick to make and to analyse."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    grid = (rng.random((6, 8, 3)) * 255).astype("uint8")
    return Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC)


def save_image(image, path: Path, atomic: bool = False, **options) -> Path:
    """Save ``image``; ``atomic`` writes a ``.part`` file and renames it, as careful copiers do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(f"{path.name}.part") if atomic else path
    image.save(target, format=options.pop("format", None) or _format_of(path), **options)
    if atomic:
        os.replace(target, path)
    return path


def _format_of(path: Path) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[path.suffix.lower()]


# The real service as a subprocess ------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


# A stability delay and debounce short enough for tests, two analysis workers.
FAST = """
[index]
stable_seconds = 0.5
workers = 2
retry_base_seconds = 1
[scan]
debounce_seconds = 0.5
schedule = "interval:1h"
"""


def settings_text(folders: list[str], extra: str = FAST) -> str:
    watches = "".join(f'[[watch]]\npath = "{folder}"\n' for folder in folders)
    return f'[paths]\nstate = "state/state.db"\nreports = "reports"\n{watches}{extra}'


class ServiceProcess:
    """``python -m dupe_scanner run --config X [ARGUMENTS]`` with a real NOTIFY_SOCKET, its
    stderr in a file."""

    def __init__(
        self, folder: Path, config: Path, *, watchdog_usec: int | None = None, arguments: tuple[str, ...] = ()
    ):
        self.folder = folder
        self.config = config
        self.arguments = arguments
        self.watchdog_usec = watchdog_usec
        self.notify = NotifySocket(folder)
        self.log_path = folder / "service.log"
        # The state and the reports where settings_text's [paths] put them, beside the settings.
        self.state = folder / "state" / "state.db"
        self.reports = folder / "reports"
        self.process: subprocess.Popen | None = None
        self.runs = 0

    def start(self, wait_ready: bool = True, timeout: float = 60) -> ServiceProcess:
        env = {**os.environ, "NOTIFY_SOCKET": self.notify.address, "PYTHONUNBUFFERED": "1"}
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        env.pop("WATCHDOG_PID", None)
        with open(self.log_path, "a") as log:
            log.write(f"----- start {self.runs + 1}\n")
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dupe_scanner", "run", "--config", str(self.config), *self.arguments],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.runs += 1
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def started(self) -> subprocess.Popen:
        assert self.process is not None, "the service has not been started"
        return self.process

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.notify.with_key("READY", "1")) < self.runs_ready_expected():
            if self.started().poll() is not None:
                raise AssertionError(f"the service exited with {self.started().returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no READY=1 within {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def runs_ready_expected(self) -> int:
        # One READY per start, plus one per reload (RELOADING=1 is followed by READY=1).
        return self.runs + len(self.notify.with_key("RELOADING", "1"))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        self.started().send_signal(signum)

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        started = time.monotonic()
        self.started().send_signal(signal.SIGTERM)
        code = self.started().wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the service and then what it started (its analysis workers), as systemd
        does to the whole unit when the main process dies; otherwise they would linger."""
        children = descendants(self.started().pid)
        self.started().send_signal(signal.SIGKILL)
        self.started().wait(30)
        kill_all(children)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        if self.alive():
            self.kill()
        self.notify.close()


def query(state: Path, sql: str, *parameters) -> list[tuple]:
    """Read the service's state the way an outsider would (read-only, WAL-aware)."""
    connection = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def read_groups(reports: Path) -> list[list[str]]:
    """duplicates.json as a list of sorted groups (empty when there is no report yet)."""
    try:
        data = json.loads((reports / "duplicates.json").read_text())
    except (OSError, ValueError):
        return []
    return sorted(sorted(paths) for paths in data.values())
