"""Worker processes that end when the process that started them ends, however it ends.

The analysis pool's workers are children of multiprocessing's fork server, itself a child
of the main process. Neither noticed the main process end: a worker waits for its next
task on a queue whose write end every worker holds too, and the fork server waits for the
end of a pipe from the main process that every worker holds as well. SIGKILL of the
service or SIGTERM of a one-shot command left them all running for good. So each worker,
as it starts:

- watches the main process from a thread, through a pidfd where the kernel has them
  (Linux 5.3), else by polling, and leaves when it ends; with the last worker gone, the
  fork server's pipe closes and it leaves too;
- asks the kernel to SIGKILL it when its parent, the fork server, ends (PR_SET_PDEATHSIG),
  so killing the fork server alone leaves no worker behind either.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
import time

from dupe_scanner.logs import configure_worker_logging, stderr_is_journal

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
POLL_SECONDS = 1.0


def start_worker(main_pid: int) -> None:
    """A process pool's ``initializer``: log as the main process does (see ``dupe_scanner.logs``),
    and end with ``main_pid``."""
    configure_worker_logging(stderr_is_journal(os.environ))
    end_with(main_pid)


def end_with(main_pid: int) -> None:
    """End this worker when ``main_pid`` or the parent ends."""
    _killed_with_parent()
    _watch(main_pid)


def _killed_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watcher alone must do
        pass


def _watch(main_pid: int) -> None:
    try:
        pidfd = os.pidfd_open(main_pid)
    except ProcessLookupError:
        os._exit(1)  # it ended while this worker was starting
    except (AttributeError, OSError):
        pidfd = None
    target = _exit_when_ended if pidfd is not None else _exit_when_gone
    argument = pidfd if pidfd is not None else main_pid
    threading.Thread(target=target, args=(argument,), name="end-with-main", daemon=True).start()


def _exit_when_ended(pidfd: int) -> None:
    select.select([pidfd], [], [])  # a pidfd becomes readable when its process ends
    os._exit(1)


def _exit_when_gone(main_pid: int) -> None:
    while _exists(main_pid):
        time.sleep(POLL_SECONDS)
    os._exit(1)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, under another user
        pass
    return True
