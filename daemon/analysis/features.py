"""What the embedded analyser remembers about one image, and its byte layout in ``features.data``.

The blob starts with a fixed prefix (magic, then the eight orientation DCT hashes) so a
neighbour index can be built by reading only ``substr(data, 1, PREFIX_BYTES)`` from SQLite;
the rest (thumbnails, keypoints) is read only for the candidate pairs being verified.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass

import numpy as np

# Version markers: what they mean and when to bump each is in daemon/analysis/__init__.py.
# ANALYSER: bump whenever the analysis changes in a way that makes old features incomparable
# with new ones (rows with another analyser are treated as missing). MAGIC: the blob layout.
ANALYSER = "embedded-dhv-5"  # 5: transparency drawn in the alpha channel alone shows over grey

MAGIC = b"DSF3"
PREFIX_BYTES = len(MAGIC) + 8 * 8  # magic + eight uint64 hashes
# The state copies this prefix into ``feature_hashes`` by trigger (migration 0003, which
# names the length): a new layout of it needs a new state revision too.


@dataclass(frozen=True)
class Features:
    """Fingerprints of one image as displayed (after EXIF orientation).

    - ``hashes``: uint64[8], a 64-bit DCT hash of each of the eight orientations
      (see ``orient``); ``hashes[0]`` is the image as displayed.
    - ``thumb``: uint8 grey thumbnail, aspect kept, long side ``THUMB_SIDE``, its contrast
      stretched to the full range (``levels`` says from what) so dim pictures keep detail.
    - ``colour``: uint8 16x16x3 colour thumbnail (aspect ignored): for the colour fidelity part of the score.
    - ``keypoints``: float32[K, 2] ORB keypoint positions in ``thumb`` pixel units of a
      larger working image (normalised to 0..1 of width and height).
    - ``descriptors``: uint8[K, 32] ORB descriptors of the image; ``mirror_descriptors``
      likewise of the mirrored image (keypoints mirrored), so mirrored copies match too.
    - ``size``: the full upright width and height, for telling pixel-identical copies apart.
    """

    hashes: np.ndarray
    thumb: np.ndarray
    colour: np.ndarray
    keypoints: np.ndarray
    descriptors: np.ndarray
    mirror_keypoints: np.ndarray
    mirror_descriptors: np.ndarray
    size: np.ndarray  # uint32[2]: full width and height as displayed
    levels: np.ndarray  # float32[2]: the grey levels that ``thumb``'s 0 and 255 stand for


_ARRAYS = ("size", "levels", "thumb", "colour", "keypoints", "descriptors", "mirror_keypoints", "mirror_descriptors")


def encode(features: Features) -> bytes:
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(np.asarray(features.hashes, dtype="<u8").tobytes())
    for name in _ARRAYS:
        array = np.ascontiguousarray(getattr(features, name))
        dtype = array.dtype.str.encode()
        out.write(struct.pack("<B", len(dtype)) + dtype)
        out.write(struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
        out.write(array.tobytes())
    return out.getvalue()


def decode(blob: bytes) -> Features:
    """The features in ``blob``; ValueError if it is not a whole blob of this analyser version
    (another version's, or damaged: cut short by a full disk, say)."""
    if blob[: len(MAGIC)] != MAGIC:
        raise ValueError("not a features blob of this analyser version")
    try:
        return _decoded(memoryview(blob))
    except (IndexError, struct.error, TypeError, ValueError) as error:
        raise ValueError(f"a damaged features blob ({error})") from None


def _decoded(view: memoryview) -> Features:
    # Every verified pair decodes two blobs, so this runs hundreds of thousands of times in a
    # first scan: plain Python arithmetic and known dtypes, not numpy calls on tuples.
    offset = len(MAGIC)
    hashes = np.frombuffer(view[offset : offset + 64], dtype="<u8").astype(np.uint64)
    offset += 64
    arrays = {}
    for name in _ARRAYS:
        dtype_len = view[offset]
        offset += 1
        dtype = _dtype(bytes(view[offset : offset + dtype_len]))
        offset += dtype_len
        ndim = view[offset]
        offset += 1
        shape = struct.unpack_from(f"<{ndim}I", view, offset)
        offset += 4 * ndim
        size = math.prod(shape) * dtype.itemsize
        arrays[name] = np.frombuffer(view[offset : offset + size], dtype=dtype).reshape(shape)
        offset += size
    return Features(hashes=hashes, **arrays)


_DTYPES: dict[bytes, np.dtype] = {}


def _dtype(name: bytes) -> np.dtype:
    """The numpy dtype a blob names (``<f4``, ``|u1``...), made once per name."""
    if name not in _DTYPES:
        _DTYPES[name] = np.dtype(name.decode())
    return _DTYPES[name]


def decode_hashes(prefix: bytes) -> np.ndarray:
    """The eight orientation hashes from the blob's first ``PREFIX_BYTES`` bytes."""
    if len(prefix) < PREFIX_BYTES or prefix[: len(MAGIC)] != MAGIC:
        raise ValueError("not a features blob of this analyser version")
    return np.frombuffer(prefix[len(MAGIC) : PREFIX_BYTES], dtype="<u8").astype(np.uint64)


def decode_hash_rows(prefixes: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``decode_hashes`` of many prefixes at once: (which are valid, uint64[valid, 8] hashes).

    A scan decodes every content's: one array operation, not a call per content.
    """
    valid = np.array([len(prefix) >= PREFIX_BYTES and prefix[: len(MAGIC)] == MAGIC for prefix in prefixes], dtype=bool)
    words = b"".join(prefix[len(MAGIC) : PREFIX_BYTES] for prefix, ok in zip(prefixes, valid.tolist(), strict=True) if ok)
    return valid, np.frombuffer(words, dtype="<u8").astype(np.uint64).reshape(-1, 8)
