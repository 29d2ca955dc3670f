"""Room beside the state for building the keypoint base, and what a scan says without it.

A large base is built a shard at a time beside the state, and its file is written from the
shards (``keypoint_store``): for a while the disk holds its points twice. Where it cannot, a
small base is built in memory instead (the files are a cache: the next scan tries again). A
large one cannot be: at a million camera photographs the points alone take 6.4 GB, and faiss
grows each list by doubling it, so such a build would end in the kernel killing the scan,
every scan. A scan then stops before the build (or as soon as the disk fills during it) and
says how much room it needs, and where.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dupe_scanner.backends.mapped_lists import POINT_BYTES
from dupe_scanner.errors import NoRoomForIndex

# The most bytes of points a base is built in memory in one go: faiss grows each list by
# doubling it, so such a build holds up to twice this, the 1 GB a scan of 100,000 pictures
# may use (some 80,000 camera photographs, 350,000 of the simulation's pictures).
IN_MEMORY_MOST = 512 << 20
ROOM_MARGIN = 1.1  # beyond the points: each list's header, the keys file, the state's own growth meanwhile


def fits_in_memory(points: int) -> bool:
    """Whether a base of ``points`` points may be built and held in memory in one go."""
    return points * POINT_BYTES <= IN_MEMORY_MOST


def room_needed(points: int) -> int:
    """Bytes free beside the state a build of ``points`` points needs: its shards and its file."""
    return int(2 * points * POINT_BYTES * ROOM_MARGIN)


def free_beside(path: Path) -> int:
    """Bytes free to an unprivileged writer on the file system of the folder holding ``path``."""
    return shutil.disk_usage(path.parent).free


def no_room(path: Path, points: int, reason: str = "") -> NoRoomForIndex:
    """The error a scan stops with when a base of ``points`` points finds no room beside
    ``path`` (the keys file); ``reason``: what failed, if a write did."""
    failed = f" ({reason})" if reason else ""
    return NoRoomForIndex(
        f"no room for the keypoint index beside the state in {path.parent}{failed}: its build needs about "
        f"{_size(room_needed(points))} free there for {points:,} points ({_size(points * POINT_BYTES)} kept, "
        f"as much again while it is built), and {_size(free_beside(path))} are free. Free some space there, or move "
        "the state to a larger disk ([paths] state in settings.toml), then scan again; what was indexed is kept"
    )


def _size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
