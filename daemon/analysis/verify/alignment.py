"""Alignment: refining a relation on the thumbnails, and measuring its geometry.

``refine`` fits the pixel map B_view -> A_view by ECC (light-invariant); ``shape_error``,
``tilt`` and ``coverage`` say what kind of map came out: how far from a uniform scale
times a quarter turn, how far turned between quarter turns, and how much of each frame the
other covers. ``bend`` asks what a perspective map makes of a pair the affine map has
aligned. Pure geometry on arrays: no knowledge of features or verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_SHAPE_ERROR = 0.02  # relative deviation of the fit from scale x quarter-turn (~0.8 degree, 2 % shear)
ECC_ITERATIONS = 40  # ECC passes at most, at half size and for the rotation-only refit
ECC_FINE_ITERATIONS = 8  # ECC passes at full size, after the half-size fit has done the travelling
ECC_EPSILON = 1e-4  # ECC stops when its correlation improves by less than this
MAX_REFINE_DRIFT = 0.12  # share of the long side any corner may move in refinement; further, ECC has wandered off
# How far from a similarity the half-size fit may come out and still be refined at full size.
# The full-size pass is short (``ECC_FINE_ITERATIONS``) and costs about as much as the whole
# half-size fit; from further away it hardly ever ends a similarity. In the library of 16,000
# tiles two fifths of the fits came from further, and none of them ended one. Chosen on the
# tune split's candidates: 3 of its 4,176 fits that ended a similarity came from further, and
# no verdict changed without them.
MAX_COARSE_SHAPE_ERROR = 0.1
BEND_ITERATIONS = 50  # ECC passes at most of the perspective fit (``bend``), from the aligned affine map
MIN_MISFIT_PIXELS = 64  # fewer covered pixels than this give no correlation worth reading


def refine(a_view: np.ndarray, b_view: np.ndarray, matrix: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """ECC refinement of the map B_view -> A_view (zero-mean normalised, so light-invariant).

    First as a free affine map, at half size and then briefly at full size (only if the half
    size fit is near a similarity: ``MAX_COARSE_SHAPE_ERROR``): when that comes out a
    similarity, it is the answer (a panned or sheared other shot shows itself here). When it
    does not (an overlay can pull an affine fit askew), the estimate is refined again with
    rotation and translation only, the scale kept; when ECC fails or wanders off, the
    estimate stands as it was. ``ignore``: pixels of B left out of the fit (an overlay).
    """
    template = b_view.astype(np.float32)
    keep = None if ignore is None else np.where(ignore, 0, 255).astype(np.uint8)
    # ECC's mask is of the image it warps (A): the overlay is carried there by the estimate.
    keep_in_a = None if keep is None else _carried(keep, matrix, a_view.shape)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ECC_ITERATIONS, ECC_EPSILON)
    height, width = b_view.shape
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], np.float32)
    limit = MAX_REFINE_DRIFT * max(a_view.shape)

    def near(candidate: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(candidate)) and np.abs(corners @ candidate.T - corners @ matrix.T).max() <= limit)

    try:
        # Coarse (half size) first, then one short pass at full size.
        half = _halve(matrix)
        coarse_keep = None if keep_in_a is None else cv2.resize(keep_in_a, _shrink(a_view).shape[::-1], interpolation=cv2.INTER_NEAREST)
        # A mask of None means "every pixel" to OpenCV; its type stubs do not say so.
        _, coarse = cv2.findTransformECC(
            _shrink(template), _shrink(a_view.astype(np.float32)), half, cv2.MOTION_AFFINE, criteria, coarse_keep, 3  # type: ignore[arg-type]
        )
        if shape_error(coarse[:, :2].astype(np.float64))[0] <= MAX_COARSE_SHAPE_ERROR:
            fine = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ECC_FINE_ITERATIONS, ECC_EPSILON)
            _, affine = cv2.findTransformECC(template, a_view.astype(np.float32), _double(coarse), cv2.MOTION_AFFINE, fine, keep_in_a, 3)  # type: ignore[arg-type]
            if near(affine) and shape_error(affine[:, :2].astype(np.float64))[0] <= MAX_SHAPE_ERROR:
                return affine
    except cv2.error:
        pass
    if stretch(matrix) > MAX_SHAPE_ERROR:
        # A turn and a shift keep the estimate's stretch (two frames of other aspects, whole
        # frame on whole frame): nothing refined from it here can come out a similarity.
        return matrix
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    resampled = cv2.warpAffine(a_view.astype(np.float32), matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    mask_flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    mask = cv2.warpAffine(np.full(a_view.shape, 255, np.uint8), matrix, (width, height), flags=mask_flags, borderValue=0)
    if keep is not None:
        mask = cv2.bitwise_and(mask, keep)
    try:
        _, euclidean = cv2.findTransformECC(template, resampled, np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN, criteria, mask, 3)
    except cv2.error:
        return matrix
    combined = (np.vstack([matrix, [0, 0, 1]]).astype(np.float64) @ np.vstack([euclidean, [0, 0, 1]]).astype(np.float64))[:2].astype(np.float32)
    return combined if near(combined) else matrix


def turned_beyond_reach(matrix: np.ndarray, a_shape: tuple[int, int], b_shape: tuple[int, int]) -> bool:
    """Whether no map ``refine`` can return from ``matrix`` is within ``MAX_SHAPE_ERROR`` of a
    scale times a quarter turn: the estimate is turned too far between quarter turns for a
    refinement to bring it back (two strangers' keypoints agree on any angle at all).

    ``refine`` keeps only maps that move no corner of B's frame further than
    ``MAX_REFINE_DRIFT`` of A's long side across or down (``near``; so at most ``sqrt(2)``
    times that in all) from where ``matrix`` puts it, or ``matrix`` itself.
    Two opposite corners lie a half diagonal ``h`` either side of the frame's centre, so
    whatever the shift, one of them moves at least as far as the change of the linear part
    moves ``h``. Turning the similar part of ``matrix`` (scale ``s``, ``tilt`` ``t`` from the
    nearest quarter turn) onto any scale times a quarter turn moves ``h`` by ``s |h| sin t``
    at least; a map within ``MAX_SHAPE_ERROR`` of one differs from it by less than
    ``2 MAX_SHAPE_ERROR`` of its scale, and the rest of ``matrix`` (its stretch) by its own
    norm. An exact bound: a map it rules out could not have verified.
    """
    linear = matrix[:, :2].astype(np.float64)
    similar_scale = float(np.hypot(linear[0, 0] + linear[1, 1], linear[1, 0] - linear[0, 1])) / 2
    stretch_norm = stretch(matrix) * similar_scale  # the norm of the part no similarity has
    half_diagonal = float(np.hypot(*b_shape)) / 2
    least_move = half_diagonal * (similar_scale * (np.sin(np.radians(tilt(matrix))) - 2 * MAX_SHAPE_ERROR) - stretch_norm)
    return bool(least_move > np.sqrt(2) * MAX_REFINE_DRIFT * max(a_shape))


def _carried(mask_in_b: np.ndarray, matrix: np.ndarray, a_shape: tuple[int, ...]) -> np.ndarray:
    """``mask_in_b`` (B's frame) carried into A's frame by ``matrix`` (B -> A); A's pixels
    outside B's frame are kept (255)."""
    return cv2.warpAffine(mask_in_b, matrix, (a_shape[1], a_shape[0]), flags=cv2.INTER_NEAREST, borderValue=255)


def _shrink(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (max(8, image.shape[1] // 2), max(8, image.shape[0] // 2)), interpolation=cv2.INTER_AREA)


def _halve(matrix: np.ndarray) -> np.ndarray:
    """A pixel map between full-size images as the same map between half-size ones."""
    linear = matrix[:, :2].astype(np.float64)
    shift = (matrix[:, 2] + 0.5 * linear.sum(axis=1) - 0.5) / 2
    return np.hstack([linear, shift[:, None]]).astype(np.float32)


def _double(matrix: np.ndarray) -> np.ndarray:
    linear = matrix[:, :2].astype(np.float64)
    shift = 2 * matrix[:, 2] - 0.5 * linear.sum(axis=1) + 0.5
    return np.hstack([linear, shift[:, None]]).astype(np.float32)


def shape_error(linear: np.ndarray) -> tuple[float, float]:
    """How far ``linear`` is from a uniform scale times a quarter-turn rotation (relative), and the scale."""
    best = (np.inf, 0.0)
    for k in range(4):
        c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][k]
        rotation = np.array([[c, -s], [s, c]], dtype=np.float64)
        scale = float(np.trace(rotation.T @ linear)) / 2
        if scale <= 0:
            continue
        error = float(np.linalg.norm(linear - scale * rotation)) / (scale * np.sqrt(2))
        best = min(best, (error, scale))
    return best


def stretch(matrix: np.ndarray) -> float:
    """How far ``matrix``'s linear part is from any similarity, whatever its rotation (relative).

    The part of a 2 x 2 map that no similarity has (``[[c, d], [d, -c]]``), against its
    similar part (``[[a, -b], [b, a]]``): unchanged by turning either image, and a lower
    bound of ``shape_error`` for the map turned by any angle.
    """
    linear = matrix[:, :2].astype(np.float64)
    similar = np.hypot(linear[0, 0] + linear[1, 1], linear[1, 0] - linear[0, 1])
    other = np.hypot(linear[0, 0] - linear[1, 1], linear[0, 1] + linear[1, 0])
    return float(other / similar) if similar > 0 else float("inf")


def tilt(matrix: np.ndarray) -> float:
    """Degrees by which the map turns B, apart from quarter turns."""
    linear = matrix[:, :2].astype(np.float64)
    degrees = np.degrees(np.arctan2(linear[1, 0] - linear[0, 1], linear[0, 0] + linear[1, 1]))
    return float(abs((degrees + 45) % 90 - 45))


def coverage(matrix: np.ndarray, a_shape: tuple[int, int], b_shape: tuple[int, int]) -> tuple[float, float]:
    """Share of A covered by B's frame, and share of B's frame that falls inside A."""
    b_height, b_width = b_shape
    a_height, a_width = a_shape
    corners = np.array([[-0.5, -0.5], [b_width - 0.5, -0.5], [b_width - 0.5, b_height - 0.5], [-0.5, b_height - 0.5]])
    mapped = corners @ matrix[:, :2].T.astype(np.float64) + matrix[:, 2].astype(np.float64)
    b_area = abs(_area(mapped))
    if b_area <= 0:
        return 0.0, 0.0
    area = abs(_area(_inside_frame(mapped, a_width, a_height)))
    return area / (a_width * a_height), area / b_area


def _inside_frame(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """The part of convex ``polygon`` inside the frame [-0.5, width - 0.5] x [-0.5, height - 0.5].

    Clipped one side of the frame at a time (Sutherland-Hodgman). OpenCV's
    ``intersectConvexConvex`` is not used: where the two outlines coincide, as two frames of
    one size aligned as they are do, it can lose half the overlap.
    """
    points = [tuple(point) for point in polygon]
    for axis, bound, below in ((0, -0.5, False), (0, width - 0.5, True), (1, -0.5, False), (1, height - 0.5, True)):
        points = _clip(points, axis, bound, below)
        if not points:
            return np.zeros((0, 2))
    return np.array(points)


def _clip(points: list[tuple[float, float]], axis: int, bound: float, below: bool) -> list[tuple[float, float]]:
    """``points`` (a polygon) cut by the line ``x[axis] = bound``, the side kept ``below`` it or above."""

    def inside(point: tuple[float, float]) -> bool:
        return point[axis] <= bound if below else point[axis] >= bound

    kept: list[tuple[float, float]] = []
    for index, current in enumerate(points):
        previous = points[index - 1]
        if inside(current) != inside(previous):
            share = (bound - previous[axis]) / (current[axis] - previous[axis])
            kept.append((previous[0] + share * (current[0] - previous[0]), previous[1] + share * (current[1] - previous[1])))
        if inside(current):
            kept.append(current)
    return kept


def _area(polygon: np.ndarray) -> float:
    """Signed area (shoelace)."""
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2


@dataclass(frozen=True)
class Bend:
    """What a perspective map (a homography, ECC-fitted from an affine one) makes of an aligned pair.

    Seen from another place, a flat scene is bent by a perspective map, which no affine map
    follows over the whole frame; an edit (a crop, a scale, a turn, light, text) bends nothing.
    """

    misfit: float  # 1 - the ECC correlation the affine map leaves between the two
    left: float  # share of that misfit the perspective map still leaves (1: it explains nothing)
    departure: float  # largest gap between the perspective map and the affine map nearest it over B's frame, share of its diagonal in A


def affine_misfit(a_view: np.ndarray, b_view: np.ndarray, matrix: np.ndarray, keep: np.ndarray | None) -> float:
    """1 - the ECC correlation of B and A mapped by ``matrix`` over the B pixels A covers
    (``keep``: a uint8 mask of B's pixels to count, 255 for kept); 1.0 when too few are covered."""
    height, width = b_view.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(a_view.astype(np.float32), matrix, (width, height), flags=flags)
    return _misfit(b_view, warped, _covered(a_view.shape, (height, width), matrix, keep, perspective=False))


def bend(a_view: np.ndarray, b_view: np.ndarray, matrix: np.ndarray, keep: np.ndarray | None) -> Bend | None:
    """The perspective map ECC fits from the affine ``matrix`` (B pixel -> A pixel), against it,
    both taken at half size (``keep``: a uint8 mask of B's pixels to fit and compare, 255 for kept);
    None when ECC fails, folds B's frame (a corner behind the eye) or moves a corner of it
    further than a refinement may (``MAX_REFINE_DRIFT``)."""
    # At half size, where the fit costs a quarter: a bend is a share of the frame, at any size.
    a_view, b_view, matrix = _shrink(a_view.astype(np.float32)), _shrink(b_view.astype(np.float32)), _halve(matrix)
    keep = None if keep is None else cv2.resize(keep, b_view.shape[::-1], interpolation=cv2.INTER_NEAREST)
    height, width = b_view.shape
    start = np.vstack([matrix, [0, 0, 1]]).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, BEND_ITERATIONS, ECC_EPSILON)
    # ECC's mask is of the image it warps (A), so B's kept pixels are carried into A's frame.
    a_keep = None if keep is None else _carried(keep, matrix, a_view.shape)
    try:
        # A mask of None means "every pixel" to OpenCV; its type stubs do not say so.
        _, homography = cv2.findTransformECC(b_view.astype(np.float32), a_view.astype(np.float32), start, cv2.MOTION_HOMOGRAPHY, criteria, a_keep, 3)  # type: ignore[arg-type]
    except cv2.error:
        return None
    # The frame's corners first, then its edges' middles and its centre.
    xs = np.array([0, width, width, 0, width / 2, width, width / 2, 0, width / 2])
    ys = np.array([0, 0, height, height, 0, height / 2, height, height / 2, height / 2])
    lifted = np.stack([xs, ys, np.ones(len(xs))], axis=1)
    projected = lifted @ homography.astype(np.float64).T
    if not np.all(np.isfinite(homography)) or np.any(projected[:, 2] <= 0):
        return None
    bent = projected[:, :2] / projected[:, 2:]
    mapped = lifted[:4] @ matrix.astype(np.float64).T
    if np.abs(bent[:4] - mapped).max() > MAX_REFINE_DRIFT * max(a_view.shape):
        return None  # wandered off, as ``refine`` tells it: a view from elsewhere bends a frame by a few hundredths
    nearest_affine, *_ = np.linalg.lstsq(lifted, bent, rcond=None)
    diagonal = max(float(np.hypot(*(mapped[2] - mapped[0]))), float(np.hypot(*(mapped[3] - mapped[1]))), 1.0)
    departure = float(np.abs(bent - lifted @ nearest_affine).max()) / diagonal
    # Both maps scored over the pixels both cover, so the perspective map gains nothing by
    # sliding B's frame off the part it fits badly.
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    covered = cv2.bitwise_and(
        _covered(a_view.shape, (height, width), matrix, keep, perspective=False),
        _covered(a_view.shape, (height, width), homography, keep, perspective=True),
    )
    affine_view = cv2.warpAffine(a_view.astype(np.float32), matrix, (width, height), flags=flags)
    bent_view = cv2.warpPerspective(a_view.astype(np.float32), homography, (width, height), flags=flags)
    misfit = _misfit(b_view, affine_view, covered)
    left = _misfit(b_view, bent_view, covered) / misfit if misfit > 0 else 1.0
    return Bend(misfit, left, departure)


def _covered(a_shape: tuple[int, int], b_shape: tuple[int, int], matrix: np.ndarray, keep: np.ndarray | None, perspective: bool) -> np.ndarray:
    """B's pixels A covers by ``matrix`` (a pixel in from the edge, where interpolation reads the
    border), and in ``keep``, as a uint8 mask."""
    height, width = b_shape
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    full = np.full(a_shape, 255, np.uint8)
    warp = cv2.warpPerspective if perspective else cv2.warpAffine
    covered = cv2.erode(warp(full, matrix, (width, height), flags=flags, borderValue=0), np.ones((3, 3), np.uint8))
    return covered if keep is None else cv2.bitwise_and(covered, keep)


def _misfit(b_view: np.ndarray, warped: np.ndarray, covered: np.ndarray) -> float:
    if cv2.countNonZero(covered) < MIN_MISFIT_PIXELS:
        return 1.0
    try:
        return 1.0 - float(cv2.computeECC(b_view.astype(np.float32), warped, covered))
    except cv2.error:  # a constant picture over the covered pixels: no correlation to read
        return 1.0
