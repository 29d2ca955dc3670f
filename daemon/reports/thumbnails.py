"""Small JPEG thumbnails as ``data:`` URIs, so the HTML report needs no other file.

Images are decoded through ``open_upright`` (EXIF orientation applied, JPEG draft
decoding, decompression bombs refused). A file that cannot be read (gone, corrupt,
no permission) gets a neutral placeholder and the report goes on. A report run tells of
such files through one ``UnreadablePictures``: a few by name, the rest as one count, so a
folder deleted during a long scan is not thousands of log lines at every report. Thumbnails
are kept by content between reports (``thumbnail_cache``), placeholders never.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from dupe_scanner.errors import FileVanished, UnreadableImage
from dupe_scanner.groups import FileEntry
from dupe_scanner.imaging import open_upright
from dupe_scanner.reports.thumbnail_cache import ThumbnailCache

log = logging.getLogger(__name__)

JPEG_QUALITY = 80
MAX_WORKERS = 4  # decoding releases the GIL; more threads than this only adds memory
# Unreadable pictures a report run names in the log; the rest are one count. A person needs
# a few examples to see what is wrong, not every file of a deleted folder.
NAMED_UNREADABLE = 5


class UnreadablePictures:
    """The pictures a report run could not make thumbnails of: the first ``NAMED_UNREADABLE``
    logged with their reason as they come, the rest counted for ``log_rest``.

    One instance per report run, shared by the graph pages and the review page, so a
    picture both fail on counts once. Safe to share between the decoding threads.
    """

    def __init__(self) -> None:
        self._gone: dict[str, bool] = {}  # path: gone (else unreadable), in the order they came
        self._lock = threading.Lock()

    def add(self, path: str, reason: str, gone: bool) -> None:
        """``path`` shows as a placeholder because of ``reason`` (which names it)."""
        with self._lock:
            if path in self._gone:
                return
            self._gone[path] = gone
            named = len(self._gone) <= NAMED_UNREADABLE
        if named:
            log.warning("report thumbnail: %s", reason)

    def log_rest(self) -> None:
        """One line for every picture not named: how many, and what a person can do about them."""
        with self._lock:
            rest = list(self._gone.values())[NAMED_UNREADABLE:]
        if not rest:
            return
        gone = sum(rest)
        log.warning(
            "report thumbnails: %s more pictures could not be read (%s gone, %s unreadable or not images) and show "
            "as a grey placeholder; files that are gone leave the reports once their folder is indexed again (the "
            "service walks its folders by itself); the others need read access for the service user, or are damaged",
            f"{len(rest):,}", f"{gone:,}", f"{len(rest) - gone:,}",
        )


def thumbnail_data_uri(path: str | Path, size: int) -> str:
    """A ``data:image/jpeg`` URI of ``path``, its long side at most ``size`` pixels.

    Never raises for a bad image: returns ``placeholder_data_uri(size)`` instead.
    """
    return _data_uri(thumbnail_jpeg(path, size), size)


def thumbnail_jpeg(path: str | Path, size: int, unreadable: UnreadablePictures | None = None) -> bytes | None:
    """The JPEG thumbnail of ``path``, or None if it cannot be read: told to ``unreadable``
    (a report run's), or without one in a log line of its own."""
    try:
        return _jpeg(Path(path), size)
    except (UnreadableImage, FileVanished) as error:
        reason, gone = str(error), isinstance(error, FileVanished)
    except (OSError, ValueError, MemoryError) as error:
        reason, gone = f"{path}: cannot be shrunk ({type(error).__name__}: {error})", False
    if unreadable is None:
        log.warning("report thumbnail: %s", reason)
    else:
        unreadable.add(str(path), reason, gone)
    return None


def thumbnail_data_uris(
    members: Sequence[FileEntry], size: int, cache: ThumbnailCache | None = None, workers: int = MAX_WORKERS,
    unreadable: UnreadablePictures | None = None,
) -> list[str]:
    """A thumbnail URI for each member, in order: from ``cache`` by content, else shrunk from
    the larger thumbnail ``cache.shrink_from`` keeps of it (a photograph takes tens of
    milliseconds to decode, a thumbnail well under one), else decoded, in a few threads."""
    cache = cache if cache is not None else ThumbnailCache(None, size)
    larger, content_of = cache.shrink_from, {member.path: member.content_hash for member in members}

    def decode(paths: Sequence[str]) -> list[bytes | None]:
        kept = {} if larger is None else {path: larger.kept_file(content_of[path]) for path in paths}
        return _decode_all(paths, size, workers, unreadable, kept)

    return [_data_uri(jpeg, size) for jpeg in cache.jpegs(members, decode)]


def thumbnail_jpegs(
    paths: Sequence[str], size: int, workers: int = MAX_WORKERS, unreadable: UnreadablePictures | None = None
) -> list[bytes | None]:
    """The JPEG thumbnail of each path, in order (None where unreadable), in a few threads."""
    return _decode_all(paths, size, workers, unreadable)


def _jpeg(path: Path, size: int) -> bytes:
    image, _format, _full_size = open_upright(path, draft_side=size)
    image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def _decode_all(
    paths: Sequence[str], size: int, workers: int, unreadable: UnreadablePictures | None, kept: Mapping[str, Path | None] | None = None
) -> list[bytes | None]:
    """Each path's thumbnail, shrunk from ``kept[path]`` (a larger thumbnail) where there is one."""
    kept = kept or {}

    def one(path: str) -> bytes | None:
        return _shrunk(kept.get(path), size) or thumbnail_jpeg(path, size, unreadable)

    if len(paths) <= 1 or workers <= 1:
        return [one(path) for path in paths]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnail") as pool:
        return list(pool.map(one, paths))


def _shrunk(thumbnail: Path | None, size: int) -> bytes | None:
    """``thumbnail`` (a kept one) shrunk to ``size``; None, so the picture itself is decoded,
    when there is none or it is torn (entries are not flushed) or gone meanwhile."""
    if thumbnail is None:
        return None
    try:
        return _jpeg(thumbnail, size)
    except (UnreadableImage, FileVanished, OSError, ValueError):
        return None


def _data_uri(jpeg: bytes | None, size: int) -> str:
    if jpeg is None:
        return placeholder_data_uri(size)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


@lru_cache(maxsize=8)
def placeholder_data_uri(size: int) -> str:
    """A grey square with a cross: "this picture could not be read"."""
    side = max(16, min(size, 256))
    image = Image.new("RGB", (side, side), (224, 224, 224))
    draw = ImageDraw.Draw(image)
    margin = side // 4
    width = max(2, side // 24)
    draw.rectangle((0, 0, side - 1, side - 1), outline=(160, 160, 160), width=width)
    draw.line((margin, margin, side - margin, side - margin), fill=(170, 40, 40), width=width)
    draw.line((margin, side - margin, side - margin, margin), fill=(170, 40, 40), width=width)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
