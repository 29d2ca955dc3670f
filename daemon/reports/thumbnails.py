"""Small JPEG thumbnails as ``data:`` URIs, so the HTML report needs no other file.

Images are decoded through ``open_upright`` (EXIF orientation applied, JPEG draft
decoding, decompression bombs refused). A file that cannot be read (gone, corrupt,
no permission) gets a neutral placeholder and a log line; the report goes on.
"""

from __future__ import annotations

import base64
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from daemon.errors import FileVanished, UnreadableImage
from daemon.imaging import open_upright

log = logging.getLogger(__name__)

JPEG_QUALITY = 80
MAX_WORKERS = 4  # decoding releases the GIL; more threads than this only adds memory


def thumbnail_data_uri(path: str | Path, size: int) -> str:
    """A ``data:image/jpeg`` URI of ``path``, its long side at most ``size`` pixels.

    Never raises for a bad image: returns ``placeholder_data_uri(size)`` instead.
    """
    try:
        image, _format, _full_size = open_upright(Path(path), draft_side=size)
        image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    except (UnreadableImage, FileVanished) as error:
        log.warning("report thumbnail: %s", error)
        return placeholder_data_uri(size)
    except (OSError, ValueError, MemoryError) as error:
        log.warning("report thumbnail: %s: cannot be shrunk (%s: %s)", path, type(error).__name__, error)
        return placeholder_data_uri(size)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail_data_uris(paths: Sequence[str], size: int, workers: int = MAX_WORKERS) -> list[str]:
    """``thumbnail_data_uri`` for each path, in a few threads, in the order given."""
    if len(paths) <= 1 or workers <= 1:
        return [thumbnail_data_uri(path, size) for path in paths]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnail") as pool:
        return list(pool.map(lambda path: thumbnail_data_uri(path, size), paths))


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
