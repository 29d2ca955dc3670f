"""Which paths matter: image files under a watched folder, minus the clutter.

Globs are matched against the path relative to the watched folder, with ``**`` crossing
folder boundaries (``**/.thumbnails/**``) and ``*`` staying within one name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

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

    def wants(self, path: Path | str) -> bool:
        """True for an image file this watch should index (judged by name alone).

        Judged on the path's text (a walk asks once per file, a million times in a large
        library: pathlib's parsing cost most of that walk); a ``Path`` is already in the
        normal form the text rules need, and so are the walk's and the state's strings."""
        text = os.fspath(path)
        if not text.startswith(self._prefix) or len(text) == len(self._prefix):
            return False
        relative = text[len(self._prefix) :]
        if not self.recursive and "/" in relative:
            return False
        if _suffix(relative).lower() not in IMAGE_EXTENSIONS:
            return False
        if self._excluded is not None and self._excluded.match(relative):
            return False
        return self._included is None or self._included.match(relative) is not None

    @cached_property
    def _prefix(self) -> str:
        return str(self.root).rstrip("/") + "/"

    @cached_property
    def _excluded(self) -> re.Pattern[str] | None:
        return _any_of(self.exclude)

    @cached_property
    def _included(self) -> re.Pattern[str] | None:
        return _any_of(self.include)

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


def _suffix(relative: str) -> str:
    """``PurePath.suffix`` of the last name: ``.jpg`` of ``a/b.jpg``, nothing for ``.hidden`` or ``a.``."""
    name = relative[relative.rfind("/") + 1 :]
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _any_of(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One expression matching what any of the globs matches (None for no globs)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{_glob(pattern).pattern})" for pattern in patterns), re.DOTALL)


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
