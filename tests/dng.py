"""Minimal but genuine DNG files, written byte by byte, that LibRaw (rawpy) reads.

No RAW sample can be downloaded in tests, and neither rawpy nor LibRaw ships one, so this
writes what a camera or Adobe's converter would, at its simplest: a little-endian TIFF
whose IFD0 is the embedded JPEG preview (NewSubFileType 1) with the DNG tags and the
Orientation, and a SubIFD holding the sensor data, 16-bit and uncompressed, as an RGGB
Bayer mosaic (NewSubFileType 0, CFA). The mosaic is made from a picture, so developing
it gives that picture back, near enough to be its duplicate.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
_SIZE = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SRATIONAL: 8}
CFA = 32803  # PhotometricInterpretation of sensor data
# XYZ (D65) to linear sRGB: as the DNG's ColorMatrix1, a sensor whose red, green and blue are sRGB's.
XYZ_TO_SRGB = (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570)


def write_dng(path: Path, picture: Image.Image, preview: Image.Image | None = None, orientation: int = 1, cut_preview: int = 0) -> Path:
    """Write ``picture`` (as stored, before ``orientation`` turns it) as a DNG's sensor data,
    with ``preview`` as its embedded JPEG preview (none if None), its last ``cut_preview``
    bytes left out (a preview truncated where the camera wrote it)."""
    mosaic = _bayer(picture)
    height, width = mosaic.shape
    sensor_bytes = mosaic.astype("<u2").tobytes()
    preview_bytes = _jpeg(preview)[: -cut_preview or None] if preview is not None else b""
    out = bytearray(b"II*\0\0\0\0\0")
    preview_at = len(out)
    out += _even(preview_bytes)
    sensor_at = len(out)
    out += sensor_bytes
    sensor_ifd = [
        (254, LONG, [0]), (256, LONG, [width]), (257, LONG, [height]), (258, SHORT, [16]), (259, SHORT, [1]),
        (262, SHORT, [CFA]), (273, LONG, [sensor_at]), (277, SHORT, [1]), (278, LONG, [height]),
        (279, LONG, [len(sensor_bytes)]), (284, SHORT, [1]),
        (0x828D, SHORT, [2, 2]), (0x828E, BYTE, [0, 1, 1, 2]),  # CFARepeatPatternDim, CFAPattern: RGGB
        (0xC61A, LONG, [0]), (0xC61D, LONG, [65535]),  # BlackLevel, WhiteLevel
    ]
    dng_tags = [
        (271, ASCII, "Test"), (272, ASCII, "DNG writer"), (274, SHORT, [orientation]),
        (0xC612, BYTE, [1, 4, 0, 0]), (0xC613, BYTE, [1, 1, 0, 0]), (0xC614, ASCII, "Test DNG writer"),  # DNGVersion..
        (0xC621, SRATIONAL, [(round(v * 10000), 10000) for v in XYZ_TO_SRGB]),  # ColorMatrix1: the sensor sees sRGB
        (0xC628, RATIONAL, [(1, 1), (1, 1), (1, 1)]),  # AsShotNeutral
        (0xC65A, SHORT, [21]),  # CalibrationIlluminant1: D65
    ]
    if preview is None:  # the sensor data are the main image, in IFD0
        ifd0 = sensor_ifd + dng_tags
    else:
        sub_ifd_at = len(out)
        out += _even(_ifd(sensor_ifd, sub_ifd_at))
        pw, ph = preview.size
        ifd0 = [
            *dng_tags,
            (254, LONG, [1]), (256, LONG, [pw]), (257, LONG, [ph]), (258, SHORT, [8, 8, 8]), (259, SHORT, [7]),
            (262, SHORT, [6]), (273, LONG, [preview_at]), (277, SHORT, [3]), (278, LONG, [ph]),
            (279, LONG, [len(preview_bytes)]), (284, SHORT, [1]), (330, LONG, [sub_ifd_at]),
        ]
    ifd0_at = len(out)
    out += _ifd(ifd0, ifd0_at)
    out[4:8] = struct.pack("<I", ifd0_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def _bayer(picture: Image.Image) -> np.ndarray:
    """Linear 16-bit RGGB mosaic of an sRGB picture (even sides)."""
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float64) / 255.0
    rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
    linear = (rgb**2.2) * 65535
    mosaic = np.empty(rgb.shape[:2])
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    return np.clip(mosaic, 0, 65535).astype(np.uint16)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _even(data: bytes) -> bytes:
    return data + b"\0" * (len(data) % 2)


def _ifd(tags: Sequence[tuple[int, int, object]], at: int) -> bytes:
    """One IFD placed at offset ``at``: its table, then the values that do not fit in 4 bytes."""
    entries = sorted(tags, key=lambda entry: entry[0])
    table_size = 2 + 12 * len(entries) + 4
    table = bytearray(struct.pack("<H", len(entries)))
    overflow = bytearray()
    for tag, kind, values in entries:
        data = _packed(kind, values)
        count = len(data) // _SIZE[kind]
        if len(data) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", tag, kind, count, at + table_size + len(overflow))
            overflow += _even(data)
    table += struct.pack("<I", 0)  # no next IFD
    return bytes(table + overflow)


def _packed(kind: int, values) -> bytes:
    if kind == ASCII:
        return values.encode() + b"\0"
    if kind in (RATIONAL, SRATIONAL):
        pairs = [part for value in values for part in value]
        return struct.pack("<" + ("II" if kind == RATIONAL else "ii") * len(values), *pairs)
    return struct.pack("<" + {BYTE: "B", SHORT: "H", LONG: "I"}[kind] * len(values), *values)
