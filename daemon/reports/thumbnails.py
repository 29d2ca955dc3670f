"""Small JPEG thumbnails as ``data:`` URIs, so the HTML report needs no other file.

Images are decoded through ``open_upright`` (EXIF orientation applied, JPEG draft
decoding, decompression bombs refused). A file that cannot be read (gone, corrupt,
no permission) gets a neutral placeholder and a log line; the report goes on. Thumbnails
are kept by content between reports (``thumbnail_cache``), placeholders never.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
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


def thumbnail_data_uri(path: str | Path, size: int) -> str:
    """A ``data:image/jpeg`` URI of ``path``, its long side at most ``size`` pixels.

    Never raises for a bad image: returns ``placeholder_data_uri(size)`` instead.
    """
    return _data_uri(thumbnail_jpeg(path, size), size)


def thumbnail_jpeg(path: str | Path, size: int) -> bytes | None:
    """The JPEG thumbnail of ``path``, or None (and a log line) if it cannot be read."""
    try:
        image, _format, _full_size = open_upright(Path(path), draft_side=size)
        image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    except (UnreadableImage, FileVanished) as error:
        log.warning("report thumbnail: %s", error)
        return None
    except (OSError, ValueError, MemoryError) as error:
        log.warning("report thumbnail: %s: cannot be shrunk (%s: %s)", path, type(error).__name__, error)
        return None
    return buffer.getvalue()


def thumbnail_data_uris(
    members: Sequence[FileEntry], size: int, cache: ThumbnailCache | None = None, workers: int = MAX_WORKERS
) -> list[str]:
    """A thumbnail URI for each member, in order: from ``cache`` by content, else decoded in a few threads."""
    cache = cache if cache is not None else ThumbnailCache(None, size)
    jpegs = cache.jpegs(members, lambda paths: _decode_all(paths, size, workers))
    return [_data_uri(jpeg, size) for jpeg in jpegs]


def thumbnail_jpegs(paths: Sequence[str], size: int, workers: int = MAX_WORKERS) -> list[bytes | None]:
    """The JPEG thumbnail of each path, in order (None where unreadable), in a few threads."""
    return _decode_all(paths, size, workers)


def _decode_all(paths: Sequence[str], size: int, workers: int) -> list[bytes | None]:
    if len(paths) <= 1 or workers <= 1:
        return [thumbnail_jpeg(path, size) for path in paths]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnail") as pool:
        return list(pool.map(lambda path: thumbnail_jpeg(path, size), paths))


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
