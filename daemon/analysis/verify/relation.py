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
# The template search is made at half size first, at every scale, where each search costs
# about a third; the scales (of both directions) with the best half-size matches are
# searched again at full size, within ``TEMPLATE_WINDOW`` pixels of where the half-size
# search put them: these many, and any other within ``TEMPLATE_NEAR_BEST`` of the best (a
# smooth gradient matches nearly as well at every scale, and which wins there decides the
# guess). Chosen on the calls of a library of 16,000 tiles (6,753) and of the labelled set
# (3,175): 98 % and 97 % end with the relation a full-size search of every scale finds, and
# of the labelled set's 573 guesses that verified, one (at the floor) is lost and two are
# gained; the search costs 0.65 and 0.56 of the full-size one.
TEMPLATE_FINALISTS = 6
TEMPLATE_WINDOW = 6
TEMPLATE_NEAR_BEST = 0.02
# Normalised correlation of gradient magnitudes below which the best match is no relation at
# all. A crop's own pixels match far above it (on the tune split the template search's one
# verified positive matched at 0.88); among strangers in a library of photograph tiles, 86 %
# of searches ended below 0.5 and none of those verified, yet each cost an alignment.
MIN_TEMPLATE_MATCH = 0.5
# ...and the best half-size match below which no full-size search is made: the full-size
# match would not reach ``MIN_TEMPLATE_MATCH``. On the same calls, every search that found a
# relation matched at 0.481 or more at half size; below 0.4, about two thirds of those that
# found none end without their full-size half (a quarter of the search's CPU).
MIN_HALF_SIZE_MATCH = MIN_TEMPLATE_MATCH - 0.1


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
    """The similarity relating B (or its mirror) to A that most keypoint matches agree on.

    Each of B's descriptors is matched to its nearest in A (``_nearest``) and the matches are
    fitted by RANSAC; most candidate pairs are strangers settled here, so it is kept to two
    array operations and the fit.
    """
    best: tuple[int, Relation] | None = None
    a_points = a.keypoints * np.array(a.thumb.shape[::-1], np.float32)
    for mirror, (points, descriptors) in enumerate(((b.keypoints, b.descriptors), (b.mirror_keypoints, b.mirror_descriptors))):
        if len(descriptors) < MIN_INLIERS or len(a.descriptors) < MIN_INLIERS:
            continue
        distances, nearest = _nearest(descriptors, a.descriptors)
        close = distances <= MAX_DESCRIPTOR_DISTANCE
        if np.count_nonzero(close) < MIN_INLIERS:
            continue
        source = (points * np.array(b.thumb.shape[::-1], np.float32))[close]
        target = a_points[nearest[close]]
        threshold = RANSAC_THRESHOLD * max(a.thumb.shape)
        matrix, inliers = cv2.estimateAffinePartial2D(
            source, target, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000, confidence=0.995
        )
        if matrix is None:
            continue
        scale = float(np.sqrt(abs(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0])))
        if not 1 / MAX_KEYPOINT_SCALE <= scale <= MAX_KEYPOINT_SCALE:
            continue  # matches collapsed onto a few points: no estimate
        count = int(inliers.sum())
        if count >= MIN_INLIERS and (best is None or count > best[0]):
            best = (count, Relation(0, bool(mirror), matrix.astype(np.float32)))
    return None if best is None else best[1]


def _nearest(query: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``query``'s ORB descriptors, the Hamming distance to its nearest in ``stored``
    and that one's row: a brute-force matcher's matches, as arrays rather than match objects."""
    distances, nearest = cv2.batchDistance(
        np.ascontiguousarray(query), np.ascontiguousarray(stored), cv2.CV_32S, normType=cv2.NORM_HAMMING, K=1, update=0, crosscheck=False
    )
    return distances.ravel(), nearest.ravel()


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
    inside B likewise: first at half size, then the best of those again at full size, near
    where they were found (``TEMPLATE_FINALISTS``), unless none matched at half size even
    near enough to be worth it (``MIN_HALF_SIZE_MATCH``).
    """
    a_view = np.ascontiguousarray(orient(a.thumb, orientation))
    a_grad, b_grad = _magnitude(a_view), _magnitude(b.thumb)
    searches = [search for inside_a in (True, False) for search in _template_searches(a_grad, b_grad, inside_a)]
    unranked = [search for search in searches if search.half_size_match is None]
    ranked = sorted((search for search in searches if search.half_size_match is not None), key=_half_size_rank)
    if not unranked and (not ranked or (ranked[0].half_size_match or 0.0) < MIN_HALF_SIZE_MATCH):
        return None
    best: tuple[float, np.ndarray] | None = None
    finalists = ranked[:TEMPLATE_FINALISTS]
    if ranked:
        near_best = (ranked[0].half_size_match or 0.0) - TEMPLATE_NEAR_BEST
        finalists += [search for search in ranked[TEMPLATE_FINALISTS:] if (search.half_size_match or 0.0) >= near_best]
    for search in unranked + finalists:
        value, matrix = search.at_full_size()
        if np.isfinite(value) and (best is None or value > best[0]):
            best = (value, matrix)
    if best is None or best[0] < MIN_TEMPLATE_MATCH:
        return None
    return Relation(orientation, False, best[1].astype(np.float32))


def _half_size_rank(search: _TemplateSearch) -> float:
    return -(search.half_size_match or 0.0)


@dataclass(frozen=True)
class _TemplateSearch:
    """The smaller frame at one scale, searched for inside the larger one: where the half-size
    search put it, and the full-size search there."""

    big: np.ndarray  # gradient magnitudes, full size
    small: np.ndarray
    inside_a: bool  # B is the smaller frame, searched for inside A
    width: int  # the smaller frame at this scale, full size
    height: int
    half_size_match: float | None  # None: too small to search at half size, so searched everywhere at full size
    x: int  # where the half-size search put it, in full-size pixels
    y: int

    def at_full_size(self) -> tuple[float, np.ndarray]:
        """The best match at full size, and its map from the smaller frame's pixels to the larger's (from B's to A's)."""
        big_h, big_w = self.big.shape
        reach = max(big_w, big_h) if self.half_size_match is None else TEMPLATE_WINDOW
        left, top = max(0, self.x - reach), max(0, self.y - reach)
        right, bottom = min(big_w, self.x + reach + self.width), min(big_h, self.y + reach + self.height)
        template = cv2.resize(self.small, (self.width, self.height), interpolation=cv2.INTER_AREA)
        result = cv2.matchTemplate(self.big[top:bottom, left:right], template, cv2.TM_CCOEFF_NORMED)
        _, value, _, (x, y) = cv2.minMaxLoc(result)
        small_h, small_w = self.small.shape
        sx, sy = self.width / small_w, self.height / small_h
        # small pixel -> big pixel
        matrix = np.array([[sx, 0, left + x + 0.5 * sx - 0.5], [0, sy, top + y + 0.5 * sy - 0.5]], np.float64)
        if not self.inside_a:
            matrix = np.asarray(cv2.invertAffineTransform(matrix), np.float64)
        return float(value), matrix


def _template_searches(a_grad: np.ndarray, b_grad: np.ndarray, inside_a: bool) -> list[_TemplateSearch]:
    """The smaller frame (B inside A, or A inside B) at every scale tried, each searched for at half size."""
    big, small = (a_grad, b_grad) if inside_a else (b_grad, a_grad)
    big_h, big_w = big.shape
    small_h, small_w = small.shape
    top = min(big_w / small_w, big_h / small_h)
    bottom = np.sqrt(MIN_TEMPLATE_AREA * big_w * big_h / (small_w * small_h))
    if bottom > top or small_w < MIN_TEMPLATE_SIDE or small_h < MIN_TEMPLATE_SIDE:
        return []
    half_big = cv2.resize(big, ((big_w + 1) // 2, (big_h + 1) // 2), interpolation=cv2.INTER_AREA)
    half_small = cv2.resize(small, ((small_w + 1) // 2, (small_h + 1) // 2), interpolation=cv2.INTER_AREA)
    searches = []
    scale = top
    while scale >= bottom:
        width, height = round(small_w * scale), round(small_h * scale)
        if MIN_TEMPLATE_SIDE <= width <= big_w and MIN_TEMPLATE_SIDE <= height <= big_h:
            half_width, half_height = min(half_big.shape[1], round(width / 2)), min(half_big.shape[0], round(height / 2))
            match: float | None = None
            x = y = 0
            if min(half_width, half_height) >= MIN_TEMPLATE_SIDE:
                template = cv2.resize(half_small, (half_width, half_height), interpolation=cv2.INTER_LINEAR)
                _, value, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(half_big, template, cv2.TM_CCOEFF_NORMED))
                match = float(value) if np.isfinite(value) else -1.0
            searches.append(_TemplateSearch(big, small, inside_a, width, height, match, min(2 * x, big_w - width), min(2 * y, big_h - height)))
        scale *= TEMPLATE_SCALE_STEP
    return searches


def _magnitude(image: np.ndarray) -> np.ndarray:
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0)
    return cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))


def views(a: Features, b: Features, relation: Relation) -> tuple[np.ndarray, np.ndarray]:
    a_view = np.ascontiguousarray(orient(a.thumb, relation.orientation))
    b_view = np.ascontiguousarray(b.thumb[:, ::-1] if relation.mirror else b.thumb)
    return a_view, b_view


def colour_views(a: Features, b: Features, relation: Relation) -> tuple[np.ndarray, np.ndarray]:
    """The colour thumbnails laid out as ``views`` lays out the grey ones (A turned, B
    mirrored), float32 0..1; A's stretched smoothly to its grey view's size, so that a pixel
    map between the grey views applies to it as it stands. (They are square whatever the
    picture's shape: a pixel of one is a sixteenth of its frame each way.)"""
    a_view, _ = views(a, b, relation)
    a_colour = np.ascontiguousarray(orient(a.colour, relation.orientation)).astype(np.float32) * np.float32(1.0 / 255.0)
    b_colour = np.ascontiguousarray(b.colour[:, ::-1] if relation.mirror else b.colour).astype(np.float32) * np.float32(1.0 / 255.0)
    height, width = a_view.shape
    return cv2.resize(a_colour, (width, height), interpolation=cv2.INTER_LINEAR), b_colour
