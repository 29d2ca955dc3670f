"""Where log lines go and how they look: stderr, plain on a terminal or in a file, and
with a syslog priority prefix (sd-daemon(3)) when stderr is systemd's journal, so that
``journalctl -p warning`` shows the warnings and errors.

Python's warnings and a thread's uncaught exception would reach stderr raw, without a
priority (the journal files them as notices); they go through logging instead, in the main
process and in the analysis workers alike.

Nothing here reads the environment: the command line passes ``JOURNAL_STREAM`` in.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping

# sd-daemon(3): "<3>" error, "<4>" warning, "<6>" info, "<7>" debug (SD_ERR ... SD_DEBUG).
ERROR, WARNING, INFO, DEBUG = 3, 4, 6, 7

NOISY = ("apscheduler", "urllib3", "watchdog", "PIL", "alembic", "faiss", "faiss.loader")


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (CRITICAL counts as an error)."""
    if levelno >= logging.ERROR:
        return ERROR
    if levelno >= logging.WARNING:
        return WARNING
    if levelno >= logging.INFO:
        return INFO
    return DEBUG


def stderr_is_journal(environ: Mapping[str, str], stderr_fd: int | None = None) -> bool:
    """True when stderr is the journal's stream: systemd sets ``JOURNAL_STREAM`` to its
    ``device:inode``, which a process's stderr keeps only while it was not redirected
    (systemd.exec(5)); a command started from a unit with ``2>file`` writes plain lines."""
    value = environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat(sys.stderr.fileno() if stderr_fd is None else stderr_fd)
    except (OSError, ValueError, AttributeError):  # no stderr, or not a real file
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def prefixed(priority_level: int, text: str) -> str:
    """``text`` with ``<N>`` in front of each line, so that a traceback's lines keep the
    priority of the message they belong to."""
    return "\n".join(f"<{priority_level}>{line}" for line in text.split("\n"))


class JournalFormatter(logging.Formatter):
    """The usual line, each of its lines prefixed with the record's syslog priority."""

    def format(self, record: logging.LogRecord) -> str:
        return prefixed(priority(record.levelno), super().format(record))


def configure_logging(level: str, verb: str, journal: bool) -> None:
    """Log at ``level`` on stderr; ``journal``: stderr is the journal (see ``stderr_is_journal``)."""
    if journal or verb == "run":
        form = "%(levelname)s %(name)s: %(message)s"  # the journal stamps each line itself
    else:
        form = "%(asctime)s %(levelname)s %(message)s"  # on a terminal the time helps
    logging.basicConfig(level=level.upper(), handlers=[_stderr_handler(form, journal)], force=True)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    _strays_through_logging()


def configure_worker_logging(journal: bool) -> None:
    """An analysis worker's: it logs nothing of its own, but a library's warning there (a
    decompression bomb, a numeric oddity) reaches the same stderr, so it goes out as the
    main process's warnings do."""
    logging.basicConfig(level=logging.WARNING, handlers=[_stderr_handler("%(levelname)s %(name)s: %(message)s", journal)], force=True)
    _strays_through_logging()


def _stderr_handler(form: str, journal: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter((JournalFormatter if journal else logging.Formatter)(form, datefmt="%H:%M:%S"))
    return handler


def _strays_through_logging() -> None:
    logging.captureWarnings(True)  # as the logger "py.warnings", at WARNING
    threading.excepthook = _log_thread_failure


def _log_thread_failure(failure: threading.ExceptHookArgs) -> None:
    if failure.exc_type is SystemExit:  # as the default hook: a thread may end itself so
        return
    name = failure.thread.name if failure.thread is not None else "a thread"
    logging.getLogger("dupe_scanner").error(
        "%s stopped on an unexpected error; this is a bug, please report it with these lines",
        name,
        exc_info=(failure.exc_type, failure.exc_value, failure.exc_traceback),  # type: ignore[arg-type]
    )
