"""Camera RAW files: the one place that knows how to read one (through LibRaw, by rawpy).

A RAW file is shown as the camera showed it: by the JPEG preview it embeds (every camera
since the mid-2000s writes one, usually the full size or close to it), turned as the RAW
says. Only when there is no preview, or it is too small for what the caller asked for, are
the sensor data developed, at half size (a quarter of the pixels, four times faster).

LibRaw reads the bytes from the handle the caller opened (so names that are not valid
UTF-8 work, and nothing but a regular file is read); every way a RAW file can be broken
becomes one ``UnreadableImage`` with a reason a person can act on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

import numpy as np
from PIL import Image

from dupe_scanner.errors import UnreadableImage

# Adobe DNG, Canon CR2 and CR3, Nikon NEF, Sony ARW, Olympus ORF, Panasonic RW2, Fujifilm RAF.
RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"})

# LibRaw's ``flip`` to the EXIF orientation that shows the picture the same way.
_ORIENTATION_OF_FLIP = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


def is_raw(path: PurePath) -> bool:
    return path.suffix.lower() in RAW_SUFFIXES


def format_name(path: PurePath) -> str:
    """A RAW file's format as reports and ``keep.preferred_formats`` name it: its suffix ("DNG", "NEF")."""
    return path.suffix[1:].upper()


@dataclass(frozen=True)
class RawPicture:
    """What a RAW file shows, before it is turned upright.

    Exactly one of ``jpeg`` (the embedded preview's bytes, for Pillow to decode) and
    ``pixels`` (an RGB bitmap: a preview stored uncompressed, or the developed sensor data).
    """

    jpeg: bytes | None
    pixels: np.ndarray | None
    orientation: int  # EXIF orientation (1 to 8) of the RAW, which its preview shares
    sensor_size: tuple[int, int]  # the developed picture's size, as stored (not turned)


def read_raw(handle: BinaryIO, path: PurePath, min_side: int | None, max_pixels: int) -> RawPicture:
    """Read the picture of the RAW file open on ``handle``.

    The embedded preview is used if its long side is at least ``min_side`` (any preview
    when None); otherwise the sensor data are developed at half size, and if that fails
    too, a smaller preview is still better than nothing.
    """
    try:  # imported on first use: most libraries hold no RAW file, and LibRaw brings OpenMP along
        import rawpy
    except ImportError as error:  # pragma: no cover - rawpy is a declared dependency
        raise UnreadableImage(f"{path}: RAW files need the rawpy package, which cannot be loaded ({error})") from None
    try:
        raw = rawpy.imread(handle)
    except rawpy.LibRawFileUnsupportedError:
        raise UnreadableImage(
            f"{path}: LibRaw {_libraw_version(rawpy)} cannot read this RAW file "
            "(corrupt, not really a RAW file, or from a camera newer than LibRaw; a newer rawpy may read it)"
        ) from None
    except (rawpy.LibRawError, MemoryError) as error:
        raise UnreadableImage(f"{path}: corrupt or truncated RAW file ({_describe(error)})") from None
    with raw:
        sizes = raw.sizes
        sensor_size = (int(sizes.width), int(sizes.height))
        if sensor_size[0] * sensor_size[1] > max_pixels:
            raise UnreadableImage(
                f"{path}: {sensor_size[0]}x{sensor_size[1]} is more than index.max_image_pixels ({max_pixels:,}) allows"
            )
        orientation = _ORIENTATION_OF_FLIP.get(int(sizes.flip), 1)
        preview, preview_problem = _preview(raw, rawpy)
        if preview is not None and (min_side is None or _long_side(preview) >= min_side):
            return RawPicture(*_preview_parts(preview, rawpy), orientation, sensor_size)
        try:
            # No flip: the caller turns every picture by ``orientation``, the preview's way.
            developed = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8, user_flip=0)
        except (rawpy.LibRawError, MemoryError) as error:
            if preview is not None:
                return RawPicture(*_preview_parts(preview, rawpy), orientation, sensor_size)
            raise UnreadableImage(
                f"{path}: {preview_problem}, and its sensor data cannot be developed ({_describe(error)}); "
                "a RAW converter may still open it"
            ) from None
        return RawPicture(None, np.ascontiguousarray(developed), orientation, sensor_size)


def _preview(raw, rawpy) -> tuple[object | None, str]:
    """The embedded preview, or None and why not."""
    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawNoThumbnailError:
        return None, "the RAW file embeds no preview"
    except rawpy.LibRawUnsupportedThumbnailError:
        return None, "the RAW file's preview is in a format LibRaw does not extract"
    except (rawpy.LibRawError, MemoryError) as error:
        return None, f"the RAW file's preview cannot be read ({_describe(error)})"
    if thumb.format not in (rawpy.ThumbFormat.JPEG, rawpy.ThumbFormat.BITMAP):
        return None, "the RAW file's preview is in a format LibRaw does not extract"
    return thumb, ""


def _preview_parts(thumb, rawpy) -> tuple[bytes | None, np.ndarray | None]:
    if thumb.format == rawpy.ThumbFormat.JPEG:
        return bytes(thumb.data), None
    return None, np.ascontiguousarray(thumb.data)


def _long_side(thumb) -> int:
    if isinstance(thumb.data, np.ndarray):
        return max(thumb.data.shape[:2])
    return _jpeg_long_side(bytes(thumb.data))


def _jpeg_long_side(data: bytes) -> int:
    """The long side a JPEG's header declares (0 if none is found); Pillow decodes it later."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return max(image.size)
    except Exception:  # a broken preview: the sensor data, or the caller's decode, say more
        return 0


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _libraw_version(rawpy) -> str:
    return ".".join(str(part) for part in rawpy.libraw_version)
