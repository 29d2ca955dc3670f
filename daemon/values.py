"""Plain values several layers pass between them: the store, the backends, the indexer.

Each is a frozen dataclass with no behaviour beyond building and comparing itself, and this
module imports nothing of the project, so any layer may use them without depending on
another: the store records what a backend returns without importing the backends.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageInfo:
    """What indexing learnt about an image, as displayed (after EXIF orientation)."""

    width: int
    height: int
    format: str  # Pillow's format name: JPEG, PNG, WEBP, HEIF, ...


@dataclass(frozen=True)
class ScoredPair:
    """Two contents that look alike; ``first < second`` so a pair has one spelling."""

    first: str
    second: str
    score: float

    @staticmethod
    def of(a: str, b: str, score: float) -> ScoredPair:
        return ScoredPair(a, b, score) if a < b else ScoredPair(b, a, score)


@dataclass(frozen=True, slots=True)
class FileStat:
    """What ``stat`` says of a file: enough to tell whether it changed without reading it."""

    size: int
    mtime_ns: int
    inode: int
    device: int

    @staticmethod
    def of(result) -> FileStat:
        return FileStat(result.st_size, result.st_mtime_ns, result.st_ino, result.st_dev)

    @property
    def signature(self) -> tuple[int, int]:
        """(size, mtime_ns): what tells a changed file from the one the state knows."""
        return self.size, self.mtime_ns

    def same_content_as(self, other: FileStat) -> bool:
        return self.signature == other.signature
