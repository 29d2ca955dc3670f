"""The main process's threads share one malloc arena, so the memory they free is reused
rather than kept in an arena per thread."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")

# Four threads allocate blocks too big for Python's own allocator; glibc's malloc_stats()
# then prints one "Arena N:" line per arena to stderr.
THREADS_THEN_STATS = textwrap.dedent(
    """
    import ctypes, sys, threading
    if sys.argv[1] == "limited":
        from dupe_scanner.malloc_arenas import limit_malloc_arenas
        assert limit_malloc_arenas()
    def allocate():
        blocks = [bytearray(4096) for _ in range(2000)]
        del blocks
    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ctypes.CDLL(None).malloc_stats()
    """
)


def arenas_after_four_threads(mode: str) -> int:
    finished = subprocess.run(
        [sys.executable, "-c", THREADS_THEN_STATS, mode], capture_output=True, text=True, check=True
    )
    return sum(1 for line in finished.stderr.splitlines() if line.startswith("Arena "))


def test_threads_share_one_arena_once_limited():
    assert arenas_after_four_threads("limited") == 1


def test_without_the_limit_threads_get_arenas_of_their_own():
    assert arenas_after_four_threads("default") > 1


def test_a_malloc_arena_max_set_by_the_person_is_left_alone(monkeypatch):
    from dupe_scanner.malloc_arenas import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
