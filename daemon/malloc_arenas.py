"""One malloc arena for all of a process's threads.

glibc gives each new thread a malloc arena of its own, up to eight per core, and memory
freed inside an arena mostly stays with the process. The threads of the main process
(thumbnails decoded four at a time, the candidate search, the service's watchers and
scheduler) each leave their freed memory behind that way: writing the reports of the
labelled bench set from scratch peaked at 493 to 498 MB and kept 402 to 408 MB; in one
arena, 346 to 353 MB and 196 MB, in about 3 % more wall time (``python -m
bench.report_memory``; ``bench/README.md``, "Memory the threads kept").

The worker processes are started afresh by the forkserver and keep glibc's default; they
run one thread each.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
ENVIRONMENT_SETTING = "MALLOC_ARENA_MAX"  # glibc's own variable: a person who sets it is obeyed


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Cap glibc's malloc arenas at ``arenas``; whether it was done.

    Not done under another C library, or when ``MALLOC_ARENA_MAX`` is set. Call it before
    the process starts its first thread: arenas made already stay.
    """
    if os.environ.get(ENVIRONMENT_SETTING) or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_ARENA_MAX, arenas) == 1
    if not done:
        log.debug("malloc arenas: glibc refused a limit of %d; each thread keeps its own", arenas)
    return done
