"""Opening untrusted image files safely, upright, and no larger than needed.

Every backend decodes through here, so every one honours EXIF orientation, reads every
format Pillow reads (HEIF/HEIC through pillow-heif) and camera RAW files (their embedded
preview, through ``rawfiles``), refuses decompression bombs, and
turns every way a file can be broken into one ``UnreadableImage`` with a reason.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dupe_scanner import rawfiles
from dupe_scanner.errors import FileVanished, UnreadableImage

try:  # HEIC/HEIF/AVIF from phones; optional so a broken wheel does not stop the rest.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pass

DEFAULT_MAX_PIXELS = 250_000_000
WHITE = (255, 255, 255, 255)
MID_GREY = (128, 128, 128, 255)
# Fewer grey levels than this between the darkest and the lightest of a picture (its
# extreme 0.5 % left out) is no drawing at all; the embedded verifier's "flat" uses the same.
MIN_DRAWING_LEVELS = 4.0
DETAIL_PROBE_SIDE = 128  # long side of the copy a picture's detail is measured on
# How to show a picture stored with EXIF orientation 2 to 8 (as ImageOps.exif_transpose does).
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow only warns about a possible decompression bomb below twice its limit; here it is
# an error. Set once for the process: warnings.catch_warnings() is not thread-safe, and
# images are decoded on several threads.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def open_upright(path: Path, draft_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode ``path`` as displayed: EXIF orientation applied, in RGB or L.

    ``draft_side`` lets JPEG decoding skip detail (Pillow's draft mode decodes at 1/2,
    1/4 or 1/8 scale, several times faster) as long as the long side stays at least that
    long. Returns the image, Pillow's format name, and the full upright size.

    A camera RAW file (``rawfiles.RAW_SUFFIXES``) is decoded from the preview it embeds,
    turned as the RAW says; its format is its suffix ("DNG") and its full size the
    developed sensor picture's.
    """
    _let_pillow_allow(max_pixels)
    try:
        with _open_regular_file(path) as handle:
            if rawfiles.is_raw(path):
                return _open_raw(handle, path, draft_side, max_pixels)
            with Image.open(handle) as image:
                image_format = image.format or "UNKNOWN"
                _refuse_bombs(path, image, max_pixels)
                full_size = _upright_size(image)
                _decode(image, draft_side)
                # In place: otherwise Pillow copies every picture shown as stored (most of
                # them), 48 MB for a 16-megapixel PNG.
                ImageOps.exif_transpose(image, in_place=True)
                return _normalise_mode(image), image_format, full_size
    except FileNotFoundError:
        raise FileVanished(f"{path}: the file disappeared while being read") from None
    except IsADirectoryError:
        raise UnreadableImage(f"{path}: is a directory") from None
    except PermissionError:
        raise UnreadableImage(f"{path}: permission denied (the service user needs read access)") from None
    except UnidentifiedImageError:
        raise UnreadableImage(f"{path}: not an image format Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImage(
            f"{path}: too large to decode safely, more than index.max_image_pixels ({max_pixels:,}) allows ({error})"
        ) from None
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise FileVanished(f"{path}: the file disappeared while being read") from None
        raise UnreadableImage(f"{path}: corrupt or truncated image ({error})") from None
    except (ValueError, SyntaxError, EOFError, MemoryError, IndexError, TypeError, KeyError) as error:
        # Pillow's plugins raise a zoo of these on malformed headers.
        raise UnreadableImage(f"{path}: malformed image ({type(error).__name__}: {error})") from None


def _decode(image: Image.Image, draft_side: int | None) -> None:
    if draft_side is not None and image.format == "JPEG":
        image.draft("RGB", _draft_request(image.size, draft_side))
    image.load()


def _open_raw(handle: BinaryIO, path: Path, draft_side: int | None, max_pixels: int) -> tuple[Image.Image, str, tuple[int, int]]:
    picture = rawfiles.read_raw(handle, path, draft_side, max_pixels)
    if picture.jpeg is not None:
        try:
            with Image.open(io.BytesIO(picture.jpeg)) as preview:
                _refuse_bombs(path, preview, max_pixels)
                _decode(preview, draft_side)
                image = preview.copy()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError) as error:
            raise UnreadableImage(f"{path}: the RAW file's embedded preview is corrupt ({type(error).__name__}: {error})") from None
    elif picture.pixels is not None:
        image = Image.fromarray(picture.pixels)
    else:  # never: a RawPicture holds one or the other
        raise UnreadableImage(f"{path}: the RAW file holds no picture")
    width, height = picture.sensor_size
    full_size = (height, width) if picture.orientation in (5, 6, 7, 8) else (width, height)
    return _normalise_mode(_turned(image, picture.orientation)), rawfiles.format_name(path), full_size


def _turned(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` as EXIF ``orientation`` says to show it (the RAW's, not the preview's own tag)."""
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return image if method is None else image.transpose(method)


def _let_pillow_allow(max_pixels: int) -> None:
    """Raise Pillow's own (process-wide) bomb limit to at least ``max_pixels``.

    Below it, Pillow's warning (an error here) would refuse images the setting allows
    (its default is 89 megapixels). It stays as the backstop for sizes that only show
    while decoding, such as an icon's embedded PNG; ``_refuse_bombs`` applies the setting.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and limit < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` for reading without blocking on a FIFO; refuse anything not a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    handle = open(fd, "rb")  # noqa: SIM115 - returned open: the caller closes it (closed here on error)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            mode = status.st_mode
            kind = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "a device or socket"
            raise UnreadableImage(f"{path}: not a regular file ({kind})")
        if status.st_size == 0:
            raise UnreadableImage(f"{path}: empty file (0 bytes)")
    except BaseException:
        handle.close()
        raise
    return handle


def _refuse_bombs(path: Path, image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise UnreadableImage(f"{path}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise UnreadableImage(
            f"{path}: {width}x{height} is more than index.max_image_pixels ({max_pixels:,}) allows"
        )


def _upright_size(image: Image.Image) -> tuple[int, int]:
    orientation = image.getexif().get(0x0112, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _draft_request(stored_size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The size to ask Pillow's draft for: the stored picture scaled to ``long_side`` on its
    long side, so a wide picture may be reduced as much as a square one (Pillow keeps both
    sides at least as large as asked) and a turned one is not decoded too small."""
    width, height = stored_size
    scale = min(1.0, long_side / max(width, height, 1))
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def flattened(rgba: Image.Image) -> Image.Image:
    """What a viewer shows of a picture with transparency, in RGB.

    Over white, as browsers, most viewers and every conversion to JPEG show it: a
    transparent PNG and its JPEG copy (flattened on white) are then the same picture
    (over grey they would differ wherever the PNG is transparent, and did not match).
    But a drawing that lives in the alpha channel alone (white pixels more or less opaque:
    wallpapers meant to lie over the desktop's colour) vanishes on white, and every such
    picture would look blank, the same as every other. Such a picture is shown over
    mid-grey, as a desktop or a viewer's dark theme shows it: grey brings out a drawing of
    any light colour (black would hide a dark one), and a checkerboard is what no viewer
    shows as the picture.
    """
    on_white = _over(rgba, WHITE)
    return _over(rgba, MID_GREY) if _only_alpha_draws(rgba, on_white) else on_white


def drawn_in_alpha_only(rgba: Image.Image) -> bool:
    """True for a picture whose drawing lives in its alpha channel alone (blank over white)."""
    return _only_alpha_draws(rgba, _over(rgba, WHITE))


def _only_alpha_draws(rgba: Image.Image, on_white: Image.Image) -> bool:
    return not _has_drawing(on_white) and _has_drawing(rgba.getchannel("A"))


def _over(rgba: Image.Image, colour: tuple[int, int, int, int]) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", rgba.size, colour), rgba).convert("RGB")


def _has_drawing(image: Image.Image) -> bool:
    probe = image.convert("L")
    probe.thumbnail((DETAIL_PROBE_SIDE, DETAIL_PROBE_SIDE), Image.Resampling.BOX)
    low, high = np.percentile(np.asarray(probe, dtype=np.float32), (0.5, 99.5))
    return float(high - low) >= MIN_DRAWING_LEVELS


def _normalise_mode(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return flattened(image.convert("RGBA"))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return image.point(lambda value: value / 256).convert("L")
    return image.convert("RGB")
