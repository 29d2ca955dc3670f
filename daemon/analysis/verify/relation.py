"""Relations: how B might map onto A, and where the estimates come from.

A ``Relation`` is an orientation of A, a mirror of B, and a 2x3 pixel map between them.
Three sources propose one: a hash match in some orientation (``full_frame``: the whole
frames coincide), ORB keypoint matches with a robust fit (``from_keypoints``: a crop, a
rescale), and, for pictures with too few keypoints, a search of one frame inside the other
by gradient magnitudes (``from_template``). Nothing here judges a relation: see
``verdict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dupe_scanner.analysis.features import Features
from dupe_scanner.analysis.fingerprints import orient

MIN_INLIERS = 8  # keypoint matches a fit needs behind it; fewer can agree on a relation by chance
MAX_KEYPOINT_SCALE = 3.0  # a keypoint fit scaling the thumbnails more than this (or less than its inverse) is degenerate
MAX_DESCRIPTOR_DISTANCE = 64  # bits of ORB's 256 by which two descriptors may differ and still match (a quarter)
RANSAC_THRESHOLD = 0.02  # share of the thumbnail's long side a keypoint may land off the fit and count as an inlier
MIN_TEMPLATE_AREA = 0.5  # a template search tries only scales at which the smaller frame keeps this share of the larger's area
MIN_TEMPLATE_SIDE = 8  # pixels: a smaller template has too little to match
TEMPLATE_SCALE_STEP = 0.97  # each scale tried is 3 % below the last; the refinement (``alignment.refine``) fits the scale between
# Normalised correlation of gradient magnitudes below which the best match is no relation at
# all. A crop's own pixels match far above it (on the tune split the template search's one
# verified positive matched at 0.88); among strangers in a library of photograph tiles, 86 %
# of searches ended below 0.5 and none of those verified, yet each cost an alignment.
MIN_TEMPLATE_MATCH = 0.5


@dataclass(frozen=True)
class Relation:
    """``B_view`` (B, mirrored if ``mirror``) maps into ``A_view`` (A in orientation ``orientation``) by ``matrix``."""

    orientation: int
    mirror: bool
    matrix: np.ndarray  # 2x3, B_view pixel -> A_view pixel


def full_frame(a: Features, b: Features, orientation: int) -> Relation:
    """``orient(A, orientation)`` and B show the same frame (what a hash match suggests)."""
    a_height, a_width = orient(a.thumb, orientation).shape
    b_height, b_width = b.thumb.shape
    sx, sy = a_width / b_width, a_height / b_height
    matrix = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], dtype=np.float32)
    return Relation(orientation, False, matrix)


def from_keypoints(a: Features, b: Features) -> Relation | None:
    """The similarity relating B (or its mirror) to A that most keypoint matches agree on."""
    best: tuple[int, Relation] | None = None
    a_points = a.keypoints * np.array(a.thumb.shape[::-1], np.float32)
    for mirror, (points, descriptors) in enumerate(((b.keypoints, b.descriptors), (b.mirror_keypoints, b.mirror_descriptors))):
        if len(descriptors) < MIN_INLIERS or len(a.descriptors) < MIN_INLIERS:
            continue
        matches = _matcher().match(np.ascontiguousarray(descriptors), np.ascontiguousarray(a.descriptors))
        matches = [m for m in matches if m.distance <= MAX_DESCRIPTOR_DISTANCE]
        if len(matches) < MIN_INLIERS:
            continue
        b_points = points * np.array(b.thumb.shape[::-1], np.float32)
        source = np.array([b_points[m.queryIdx] for m in matches], np.float32)
        target = np.array([a_points[m.trainIdx] for m in matches], np.float32)
        threshold = RANSAC_THRESHOLD * max(a.thumb.shape)
        matrix, inliers = cv2.estimateAffinePartial2D(
            source, target, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000, confidence=0.995
        )
        if matrix is None:
            continue
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        if not 1 / MAX_KEYPOINT_SCALE <= scale <= MAX_KEYPOINT_SCALE:
            continue  # matches collapsed onto a few points: no estimate
        count = int(inliers.sum())
        if count >= MIN_INLIERS and (best is None or count > best[0]):
            best = (count, Relation(0, bool(mirror), matrix.astype(np.float32)))
    return None if best is None else best[1]


_MATCHER = None


def _matcher():
    global _MATCHER
    if _MATCHER is None:
        _MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)
    return _MATCHER


def _hash_distances(a: Features, b: Features) -> np.ndarray:
    """Bits between each orientation of A's hash and B's hash as displayed."""
    return np.bitwise_count(np.asarray(a.hashes, dtype=np.uint64) ^ np.uint64(b.hashes[0]))


def closest_orientation(a: Features, b: Features) -> int:
    """The orientation of A whose hash is nearest B's: the likeliest relation when nothing else tells."""
    return int(np.argmin(_hash_distances(a, b)))


def hash_distance(a: Features, b: Features) -> int:
    """Bits between B's hash and the nearest orientation of A's."""
    return int(_hash_distances(a, b).min())


def from_template(a: Features, b: Features, orientation: int) -> Relation | None:
    """The crop relation (one frame inside the other) that best matches gradient magnitudes.

    For pictures with few keypoints (smooth skies, illustrations): B is searched for inside
    A in the given orientation at every scale that keeps at least half the area, and A
    inside B likewise.
    """
    a_view = np.ascontiguousarray(orient(a.thumb, orientation))
    b_view = b.thumb
    a_grad, b_grad = _magnitude(a_view), _magnitude(b_view)
    best: tuple[float, np.ndarray] | None = None
    for inside_a in (True, False):
        big, small = (a_grad, b_grad) if inside_a else (b_grad, a_grad)
        big_h, big_w = big.shape
        small_h, small_w = small.shape
        top = min(big_w / small_w, big_h / small_h)
        bottom = np.sqrt(MIN_TEMPLATE_AREA * big_w * big_h / (small_w * small_h))
        if bottom > top or small_w < MIN_TEMPLATE_SIDE or small_h < MIN_TEMPLATE_SIDE:
            continue
        scale = top
        while scale >= bottom:
            width, height = round(small_w * scale), round(small_h * scale)
            if MIN_TEMPLATE_SIDE <= width <= big_w and MIN_TEMPLATE_SIDE <= height <= big_h:
                template = cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA)
                result = cv2.matchTemplate(big, template, cv2.TM_CCOEFF_NORMED)
                _, value, _, (x, y) = cv2.minMaxLoc(result)
                sx, sy = width / small_w, height / small_h
                # small pixel -> big pixel
                matrix = np.array([[sx, 0, x + 0.5 * sx - 0.5], [0, sy, y + 0.5 * sy - 0.5]], np.float64)
                if not inside_a:
                    matrix = np.asarray(cv2.invertAffineTransform(matrix), np.float64)
                if np.isfinite(value) and (best is None or value > best[0]):
                    best = (float(value), matrix)
            scale *= TEMPLATE_SCALE_STEP
    if best is None or best[0] < MIN_TEMPLATE_MATCH:
        return None
    return Relation(orientation, False, best[1].astype(np.float32))


def _magnitude(image: np.ndarray) -> np.ndarray:
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0)
    return cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))


def views(a: Features, b: Features, relation: Relation) -> tuple[np.ndarray, np.ndarray]:
    a_view = np.ascontiguousarray(orient(a.thumb, relation.orientation))
    b_view = np.ascontiguousarray(b.thumb[:, ::-1] if relation.mirror else b.thumb)
    return a_view, b_view
