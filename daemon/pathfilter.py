"""Which paths matter: image files under a watched folder, minus the clutter.

Globs are matched against the path relative to the watched folder, with ``**`` crossing
folder boundaries (``**/.thumbnails/**``) and ``*`` staying within one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from dupe_scanner.rawfiles import RAW_SUFFIXES

# Extensions of the formats Pillow (with pillow-heif) decodes and people keep photos in,
# and of the camera RAW files ``rawfiles`` reads.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".tif", ".tiff",
        ".webp", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".jpx", ".ico", ".ppm", ".pgm",
        ".pbm", ".pnm", ".tga", ".psd", ".pcx", ".dds", ".icns", ".sgi", ".im", ".msp", ".qoi",
    }
) | RAW_SUFFIXES


@dataclass(frozen=True)
class PathFilter:
    root: Path
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    recursive: bool = True

    def wants(self, path: Path) -> bool:
        """True for an image file this watch should index (judged by name alone)."""
        try:
            relative = PurePosixPath(path.relative_to(self.root).as_posix())
        except ValueError:
            return False
        if not relative.parts or (not self.recursive and len(relative.parts) > 1):
            return False
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            return False
        text = str(relative)
        if any(_glob(pattern).match(text) for pattern in self.exclude):
            return False
        return not self.include or any(_glob(pattern).match(text) for pattern in self.include)

    def wants_folder(self, folder: Path) -> bool:
        """False for a folder whose whole content is excluded (so a walk need not enter it)."""
        try:
            relative = folder.relative_to(self.root).as_posix()
        except ValueError:
            return False
        if relative == ".":
            return True
        if not self.recursive:
            return False
        probe = f"{relative}/x"
        return not any(pattern.endswith("/**") and _glob(pattern).match(probe) for pattern in self.exclude)


@lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    pattern = pattern.lstrip("/")
    parts = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)
