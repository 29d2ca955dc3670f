"""Computing the features of one image: pure, top-level functions that run in worker processes.

One decode per image, as small as the features need: JPEGs are decoded in Pillow's draft
mode at 1/2 .. 1/8 scale (several times faster), everything else is reduced right after
decoding. From a working image of at most ``WORK_SIDE`` pixels on the long side come:

- a 64-bit DCT hash per orientation (the eight rotations and mirrorings), for proposing
  candidates that differ in colour, brightness, size, format, blur, orientation;
- ORB keypoints and descriptors of the image and of its mirror, for proposing candidates
  that are crops or carry text, and for estimating the geometry between two images;
- a small grey thumbnail and a tiny colour one, for verifying a candidate pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dupe_scanner.analysis.features import Features, encode
from dupe_scanner.errors import AnalysisFailed
from dupe_scanner.imaging import open_upright

WORK_SIDE = 512  # long side of the working image keypoints are found on
# JPEGs may decode a little short of WORK_SIDE: a 4000 px photograph then decodes at 1/8
# scale (500 px), twice as fast as at 1/4, and its working image is 500 px.
DRAFT_SIDE = 460
THUMB_SIDE = 160  # long side of the stored grey thumbnail
COLOUR_SIDE = 16
HASH_SIDE = 32
ORB_FEATURES = 160

cv2.setNumThreads(1)  # parallelism comes from the process pool, not from inside OpenCV


@dataclass(frozen=True)
class Analysis:
    width: int
    height: int
    format: str
    blob: bytes


def analyse_file(path: str, max_pixels: int) -> Analysis:
    """Decode ``path`` upright and compute its features.

    Raises UnreadableImage, FileVanished, and AnalysisFailed for any other error: whatever
    breaks on one picture fails that picture alone, with a reason, never the whole run.
    """
    image, image_format, (width, height) = open_upright(Path(path), draft_side=DRAFT_SIDE, max_pixels=max_pixels)
    try:
        blob = encode(features_of(image, (width, height)))
    except Exception as error:
        raise AnalysisFailed(_analysis_failure(path, (width, height), error)) from None
    return Analysis(width, height, image_format, blob)


def _analysis_failure(path: str, size: tuple[int, int], error: Exception) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return (
        f"{path}: the {size[0]}x{size[1]} image was read but could not be analysed "
        f"({type(error).__name__}: {first_line}); this is a bug in dupe-scanner, please report it "
        "with the file; `index --retry-failed` tries again after an upgrade"
    )


def features_of(image: Image.Image, full_size: tuple[int, int]) -> Features:
    rgb = image.convert("RGB")
    rgb = _fit(rgb, WORK_SIDE)
    grey = np.asarray(rgb.convert("L"))
    small = np.asarray(rgb.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX), dtype=np.float64)
    hashes = np.array([dct_hash(orient(small, k)) for k in range(8)], dtype=np.uint64)
    thumb, levels = _stretched(np.asarray(_fit(rgb, THUMB_SIDE).convert("L"), dtype=np.float32))
    colour = np.asarray(rgb.resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BOX))
    keypoints, descriptors = orb(grey)
    mirror_keypoints, mirror_descriptors = orb(np.ascontiguousarray(grey[:, ::-1]))
    return Features(
        hashes=hashes,
        thumb=np.ascontiguousarray(thumb),
        colour=np.ascontiguousarray(colour),
        keypoints=keypoints,
        descriptors=descriptors,
        mirror_keypoints=mirror_keypoints,
        mirror_descriptors=mirror_descriptors,
        size=np.array(full_size, dtype=np.uint32),
        levels=levels,
    )


def _stretched(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` with its 0.5 and 99.5 percentiles stretched to 0 and 255, and those two levels."""
    low, high = np.percentile(grey, (0.5, 99.5))
    high = max(high, low + 1.0)
    stretched = np.clip((grey - low) * (255.0 / (high - low)) + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(stretched), np.array([low, high], dtype=np.float32)


def _fit(image: Image.Image, side: int) -> Image.Image:
    width, height = image.size
    scale = side / max(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def orient(array: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` of 0..7: rotated ``k % 4`` quarter turns counter-clockwise, then mirrored left-right if ``k >= 4``."""
    turned = np.rot90(array, k % 4)
    return np.fliplr(turned) if k >= 4 else turned


def _dct_matrix(n: int, keep: int) -> np.ndarray:
    rows = np.arange(keep)[:, None]
    cols = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * cols + 1) * rows / (2 * n))


_DCT = _dct_matrix(HASH_SIDE, 8)
_BITS = (np.uint64(1) << np.arange(64, dtype=np.uint64)).astype(np.uint64)


def dct_hash(grey32: np.ndarray) -> np.uint64:
    """A perceptual hash: the signs of the 8x8 lowest DCT frequencies against their median."""
    coefficients = (_DCT @ grey32 @ _DCT.T).ravel()
    bits = coefficients > np.median(coefficients[1:])
    return np.uint64(np.bitwise_or.reduce(_BITS[bits])) if bits.any() else np.uint64(0)


_ORB = None
GRID = 6  # keypoints are spread over a GRID x GRID grid so one busy corner cannot take them all
EDGE_THRESHOLD = 15  # pixels of border where ORB finds no keypoint (its patch would stick out)
# Narrower than this, no keypoint can lie clear of both borders; and OpenCV's ORB fails outright
# when a level of its pyramid shrinks a side to 0 pixels (a 1 or 2 pixel strip).
MIN_KEYPOINT_SIDE = 2 * EDGE_THRESHOLD + 1


def _no_keypoints() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)


def orb(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB keypoints (normalised 0..1 positions) and descriptors, spread over the picture."""
    global _ORB
    if _ORB is None:
        # Many more points are detected than kept, so the grid below has some in every part of
        # the picture: large, sharp text would otherwise take every one of the strongest.
        _ORB = cv2.ORB.create(nfeatures=40 * ORB_FEATURES, scaleFactor=1.3, nlevels=6, edgeThreshold=EDGE_THRESHOLD, patchSize=15, fastThreshold=4)
    height, width = grey.shape
    found = _ORB.detect(grey, None) if min(height, width) >= MIN_KEYPOINT_SIDE else ()
    if not found:
        return _no_keypoints()
    positions = np.asarray(cv2.KeyPoint.convert(found), dtype=np.float32)
    chosen = spread_strongest(positions, np.array([point.response for point in found]), width, height)
    kept, descriptors = _ORB.compute(grey, [found[at] for at in chosen])  # drops points too near the border to describe
    if descriptors is None or not kept:
        return _no_keypoints()
    points = np.array([p.pt for p in kept], dtype=np.float32) / np.array([width, height], dtype=np.float32)
    return points, np.ascontiguousarray(descriptors)


def spread_strongest(positions: np.ndarray, responses: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which of the detected points to describe: the strongest ``per_cell`` of each cell of a
    ``GRID`` x ``GRID`` grid, then the strongest ``ORB_FEATURES`` of those, strongest first.

    Ties go to the point detected first, and between cells to the cell whose strongest point
    came first. In array operations: a picture's 1,600 or so detected points cost 1.7 ms a
    pass through Python objects, twice a picture (it and its mirror).
    """
    per_cell = max(1, ORB_FEATURES // (GRID * GRID)) + 1
    by_strength = np.argsort(-responses, kind="stable")
    spots = positions[by_strength].astype(np.float64)
    column = np.minimum(GRID - 1, (spots[:, 0] * GRID / width).astype(np.int64))
    row = np.minimum(GRID - 1, (spots[:, 1] * GRID / height).astype(np.int64))
    cell = row * GRID + column
    # Each point's place among its cell's, strongest first: a cell keeps its first ``per_cell``.
    in_cell_order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[in_cell_order], cell[in_cell_order], side="left")
    rank = np.empty(len(cell), np.int64)
    rank[in_cell_order] = np.arange(len(cell)) - starts
    first_of_cell = np.full(GRID * GRID, len(cell), np.int64)
    np.minimum.at(first_of_cell, cell, np.arange(len(cell)))
    kept = np.flatnonzero(rank < per_cell)
    # Equal responses: cells in the order their strongest point came, then each point's strength order.
    order = np.lexsort((kept, first_of_cell[cell[kept]], -responses[by_strength[kept]]))
    return by_strength[kept[order]][:ORB_FEATURES]
