"""Giving memory back to the system once a large piece of work is done with it.

CPython frees the objects, but glibc keeps the pages in its heap. Called when a scan or a
reconcile walk finishes, so an idle service does not sit at its peak; and inside a scan, when
the candidate search's arrays (the keypoint index, each batch's search results) are gone, so
the long verification that follows does not carry them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _load_malloc_trim()


def release_memory() -> None:
    """Give the memory freed since back to the system.

    Measured: an idle service after a scan of 10,000 files, 1.5 GB -> 130 MB; a scan of
    10,000 pictures once it had proposed its candidates, 254 MB -> 135 MB.
    """
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
