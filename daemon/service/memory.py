"""Giving memory back to the system after a scan or a reconcile walk (both call
``release_memory`` when they finish)."""

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
    """Give the memory a scan or a walk used back to the system.

    A scan of 10,000 files peaks at well over a gigabyte; CPython frees the objects but
    glibc keeps the pages, so an idle service would sit at its peak. Trimming brings it
    back to its working size (measured: 1.5 GB -> 130 MB).
    """
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
