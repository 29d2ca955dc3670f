"""Helpers for the service's tests: a real NOTIFY_SOCKET, waiting for conditions."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
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
            except socket.timeout:
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
