"""Telling systemd how the service is doing: the ``sd_notify`` protocol, by hand.

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named
in ``$NOTIFY_SOCKET`` (a path, or an abstract socket written ``@name``). Without that
variable (run from a terminal, or a unit that is not ``Type=notify``) every call is a
no-op, so the service code can notify unconditionally.

The environment is read by the composition root and handed to :meth:`Notifier.from_environ`;
nothing here looks at ``os.environ`` by itself. A failure to send is logged once and
never raised: losing a status line must not take the service down.

See sd_notify(3): READY=1, RELOADING=1 (+ MONOTONIC_USEC, which Type=notify-reload
requires), STOPPING=1, STATUS=..., WATCHDOG=1, and WATCHDOG_USEC / WATCHDOG_PID for
the heartbeat interval.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping

log = logging.getLogger(__name__)

# The variables the composition root passes in, and should drop from the environment
# afterwards so that child processes do not talk to systemd in our name.
ENVIRONMENT_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

# STATUS= text longer than this is cut: systemctl shows one line, and a datagram has a limit.
MAX_STATUS_CHARS = 500


class Notifier:
    """Sends sd_notify messages; safe to call from any thread."""

    def __init__(
        self,
        address: str | None,
        watchdog_usec: int | None = None,
        *,
        monotonic_usec: Callable[[], int] = lambda: time.monotonic_ns() // 1000,
    ):
        self.address = address or None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._monotonic_usec = monotonic_usec
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int) -> Notifier:
        """A notifier for the environment systemd gave process ``pid``.

        WATCHDOG_USEC counts only when WATCHDOG_PID is unset or names ``pid`` (the
        variables may have been inherited by a process they were not meant for).
        """
        address = environ.get("NOTIFY_SOCKET") or None
        watchdog_usec: int | None = None
        text = environ.get("WATCHDOG_USEC", "")
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        if text.isdigit() and (not watchdog_pid or watchdog_pid == str(pid)):
            watchdog_usec = int(text)
        return cls(address, watchdog_usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of WatchdogSec, as sd_watchdog_enabled(3) advises."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    # The messages ------------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY="1", STATUS=status)

    def reloading(self, status: str | None = None) -> bool:
        return self.send(RELOADING="1", MONOTONIC_USEC=str(self._monotonic_usec()), STATUS=status)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING="1", STATUS=status)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def send(self, **fields: str | None) -> bool:
        """Send one datagram with the given fields (``None`` values are left out).

        Returns True when a datagram was sent, False when notifying is off or failed.
        """
        if self.address is None:
            return False
        message = format_message(fields)
        if not message:
            return False
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.sendto(message, socket_address(self.address))
            except OSError as error:
                if not self._failed:
                    log.warning("cannot notify systemd at %s: %s (further failures are not logged)", self.address, error)
                    self._failed = True
                self._close_locked()
                return False
        return True

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def format_message(fields: Mapping[str, str | None]) -> bytes:
    """``KEY=value`` lines; newlines inside a value would start a bogus field, so they become spaces."""
    lines = []
    for key, value in fields.items():
        if value is None:
            continue
        value = " ".join(str(value).splitlines())
        if key == "STATUS" and len(value) > MAX_STATUS_CHARS:
            value = value[: MAX_STATUS_CHARS - 1] + "…"
        lines.append(f"{key}={value}")
    return "\n".join(lines).encode("utf-8")


def socket_address(address: str) -> str | bytes:
    """``@name`` is an abstract socket (a leading NUL byte); anything else is a path."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode("utf-8")
    return address


def drop_environment(environ: MutableMapping[str, str]) -> None:
    """Remove the notify variables (for the composition root, once it has read them)."""
    for key in ENVIRONMENT_KEYS:
        environ.pop(key, None)
