"""Verifying a candidate pair: is one image an edited copy of the other, and how close?

The fingerprints only *propose* pairs. Here the geometric relation between the two is
estimated (orientation, scale, crop offset: from the matching hash orientation, or from
ORB keypoint matches with a robust fit, then refined by ECC on the thumbnails), and the
aligned pixels are compared with measures that ignore global photometric changes.

Where a "same scene" pair stops being a duplicate (the rule, in geometric terms):

- A duplicate shows a subset of the other image's pixels: one frame lies inside the other
  (``CONTAINMENT``), related by a quarter-turn rotation, a mirror, a uniform scale and an
  offset only (``MAX_SHAPE_ERROR``, and not turned by more than ``MAX_TILT``); edits of
  colour, light, clarity and overlaid text are allowed.
- Another shot of the same scene is not: two frames that each show a strip of the scene the
  other lacks (consecutive frames, a panned or shaken camera, stereo pairs), frames related
  by a small rotation (a hand-held bracket), a shear or a perspective change (another
  viewpoint), or aligned content that disagrees over much of the picture (parallax, moving
  subjects).
- Overlaid text or a mark adds sharp edges the other picture lacks; those cells count as a
  visible difference, not as content that disagrees (``OVERLAY_ENERGY``), and when they pull
  the alignment askew it is made again without them. That excuse holds only where the rest
  of the two pictures is the same up to a change of light (``OVERLAY_REST_DIFFERENCE``):
  the same login screen over two wallpapers has a logo over one's smooth sky, too.
- Two different pictures under one overlay (a photographer's watermark on every picture)
  align on the overlay alone; an edit or an overlay leaves the broad layout of light and
  dark in place, so it must correlate (``MIN_LAYOUT_CORRELATION``).
- Telling them apart: when the frames align well (``OTHER_SHOT_AGREEMENT``) yet neither
  contains the other, that settles it (no other relation is searched for, which would only
  find some rescaled overlap that happens to look alike); a frame cut by ``CROPPED`` or
  more must agree nearly everywhere (``MAX_CROPPED_OVERLAY``: parallax and perspective
  leave the overlap of two shots disagreeing in places); and a relation found by template
  search alone, with no hash or keypoint support, must not need the score floor.

The score is on Flow's scale: 1.0 pixel-identical; 0.9 and up no visible change (size,
format, recompression); down to 0.6 as crops, overlays and photometric edits grow; a pair
that fails verification scores below 0.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from daemon.analysis.features import Features
from daemon.analysis.fingerprints import orient

# Bump when scores change (a new check, a moved limit): stored pairs are then scored again.
VERIFIER = "verify-8"  # 8: strangers settled before any alignment; flat pictures never exact on colour alone

CONTAINMENT = 0.985  # the smaller frame must lie this much inside the larger
MAX_SHAPE_ERROR = 0.02  # relative deviation of the fit from scale x quarter-turn (~0.8 degree, 2 % shear)
MAX_TILT = 0.6  # degrees: an edit turns a picture by quarter turns only; another shot may be tilted a little
MIN_AGREEMENT = 0.45  # share of textured cells whose gradients agree after alignment
MIN_GRADIENT_CORRELATION = 0.25
CELL_AGREES = 0.5
MIN_INLIERS = 8
NEAR_FLOOR = 0.61  # a verified pair never scores below this (the near-duplicate default is 0.6)
OTHER_SHOT_AGREEMENT = 0.75  # aligned this well yet neither frame inside the other: another shot, decided
OTHER_SHOT_CORRELATION = 0.6
CROPPED = 0.15  # a frame cut this much (share of the larger frame's area)...
MAX_CROPPED_OVERLAY = 0.10  # ...must agree nearly everywhere: no more disagreeing area than this
OVERLAY_ENERGY = 4.0  # a cell where one picture's gradient energy is this many times the other's is overlaid
OVERLAY_REST_DIFFERENCE = 0.03  # ...only if, outside it, grey levels differ by no more than this (0..1), light change aside
LAYOUT_BLUR = 3.0  # pixels of the 160 px thumbnail
MIN_LAYOUT_CORRELATION = 0.55  # broad light-and-dark layout of the aligned pictures (see _layout_correlation)
MAX_KEYPOINT_SCALE = 3.0  # a keypoint fit scaling the thumbnails more than this (or less than its inverse) is degenerate


@dataclass(frozen=True)
class Verdict:
    score: float
    verified: bool
    reason: str
    # No other relation needs trying: the frames coincide (verified, nothing cropped), or they
    # align well but each shows a part of the scene the other lacks (another shot).
    decided: bool = False


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
        matches = [m for m in matches if m.distance <= 64]
        if len(matches) < MIN_INLIERS:
            continue
        b_points = points * np.array(b.thumb.shape[::-1], np.float32)
        source = np.float32([b_points[m.queryIdx] for m in matches])
        target = np.float32([a_points[m.trainIdx] for m in matches])
        threshold = 0.02 * max(a.thumb.shape)
        matrix, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000, confidence=0.995)
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
        bottom = np.sqrt(0.5 * big_w * big_h / (small_w * small_h))
        if bottom > top or small_w < 8 or small_h < 8:
            continue
        scale = top
        while scale >= bottom:
            width, height = round(small_w * scale), round(small_h * scale)
            if 8 <= width <= big_w and 8 <= height <= big_h:
                template = cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA)
                result = cv2.matchTemplate(big, template, cv2.TM_CCOEFF_NORMED)
                _, value, _, (x, y) = cv2.minMaxLoc(result)
                sx, sy = width / small_w, height / small_h
                # small pixel -> big pixel
                matrix = np.array([[sx, 0, x + 0.5 * sx - 0.5], [0, sy, y + 0.5 * sy - 0.5]], np.float64)
                if not inside_a:
                    matrix = cv2.invertAffineTransform(matrix)
                if np.isfinite(value) and (best is None or value > best[0]):
                    best = (float(value), matrix)
            scale *= 0.97
    if best is None or best[0] < 0.3:
        return None
    return Relation(orientation, False, best[1].astype(np.float32))


def _magnitude(image: np.ndarray) -> np.ndarray:
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0)
    return cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))


def views(a: Features, b: Features, relation: Relation) -> tuple[np.ndarray, np.ndarray]:
    a_view = np.ascontiguousarray(orient(a.thumb, relation.orientation))
    b_view = np.ascontiguousarray(b.thumb[:, ::-1] if relation.mirror else b.thumb)
    return a_view, b_view


def verify(a: Features, b: Features, relation: Relation, guessed: bool = False) -> Verdict:
    """Judge one relation, after refining it on the thumbnails.

    ``guessed``: the relation comes from a template search, not from the hash or from
    keypoint matches; with nothing else behind it, the aligned pictures must also look
    alike (the visible difference within what a verified pair may show above the floor).
    """
    a_view, b_view = views(a, b, relation)
    if is_flat(a) and is_flat(b):  # nothing to align: plain pictures match on colour alone
        return _flat_verdict(a, b)
    verdict = _judge(a, b, relation, a_view, b_view, _refine(a_view, b_view, relation.matrix), guessed)
    if verdict.verified:
        return verdict
    # Large text or a mark pulls the alignment its way: align once more on the picture alone,
    # two cells around the overlay left out too (its outline, its shadow, the rows of a tiled
    # mark). The overlay is found at the first estimate: the refined one may lean towards it.
    before = _structure(a_view, b_view, relation.matrix, a.levels, b.levels)
    if before is None or not before.overlay.any():
        return verdict
    margin = 4 * _cell_side(b_view.shape) + 1
    overlay = cv2.dilate(before.overlay.astype(np.uint8), np.ones((margin, margin), np.uint8)) > 0
    realigned = _judge(a, b, relation, a_view, b_view, _refine(a_view, b_view, relation.matrix, ignore=overlay), guessed)
    return realigned if realigned.score > verdict.score else verdict


def _judge(a: Features, b: Features, relation: Relation, a_view: np.ndarray, b_view: np.ndarray, matrix: np.ndarray, guessed: bool = False) -> Verdict:
    shape_error, _ = _shape_error(matrix[:, :2].astype(np.float64))
    cover_a, cover_b = _coverage(matrix, a_view.shape, b_view.shape)
    if cover_a <= 0.05 or cover_b <= 0.05:
        return Verdict(0.0, False, "no overlap")
    structure = _structure(a_view, b_view, matrix, a.levels, b.levels)
    if structure is None:
        return Verdict(0.0, False, "no overlap")
    agreement, overall, correlation, difference, layout = structure.agreement, structure.overall, structure.correlation, structure.difference, structure.layout
    similar = 0.5 * max(0.0, agreement) * max(0.0, correlation)
    if shape_error > MAX_SHAPE_ERROR:
        return Verdict(min(similar, 0.59), False, f"not a similarity (shape error {shape_error:.3f})")
    tilt = _tilt(matrix)
    if tilt > MAX_TILT:
        return Verdict(min(similar, 0.59), False, f"tilted by {tilt:.2f} degrees: another shot")
    if max(cover_a, cover_b) < CONTAINMENT:
        other_shot = agreement >= OTHER_SHOT_AGREEMENT and correlation >= OTHER_SHOT_CORRELATION
        return Verdict(min(similar, 0.59), False, f"neither frame contains the other ({cover_a:.3f}, {cover_b:.3f})", decided=other_shot)
    if agreement < MIN_AGREEMENT or correlation < MIN_GRADIENT_CORRELATION:
        return Verdict(min(similar, 0.59), False, f"content disagrees (agreement {agreement:.2f}, correlation {correlation:.2f})")
    if layout < MIN_LAYOUT_CORRELATION:
        return Verdict(min(similar, 0.59), False, f"light and dark laid out differently (layout {layout:.2f}): only an overlay agrees")
    # How visible the difference is: cropped area, disagreeing (overlaid) area, light, colour.
    crop_loss = 1.0 - min(cover_a, cover_b)
    overlay_loss = max(0.0, (1.0 - overall) - 0.05)
    light_loss = 2.0 * max(0.0, difference - 0.005)
    colour_loss = _colour_difference(a.colour, b.colour)
    visible = crop_loss + overlay_loss + light_loss + colour_loss
    if visible < 0.004 and tuple(a.size) == tuple(b.size) and relation.orientation == 0 and not relation.mirror:
        return Verdict(1.0, True, "pixel-identical")
    if crop_loss >= CROPPED and overlay_loss > MAX_CROPPED_OVERLAY:
        # A large crop whose content disagrees in places is the signature of another shot
        # (perspective, parallax): the overlapping part of two frames, aligned at best.
        return Verdict(min(similar, 0.59), False, f"a cropped frame whose content disagrees (crop {crop_loss:.2f}, overlay {overlay_loss:.2f})")
    if guessed and 1.0 - 0.8 * visible < NEAR_FLOOR:
        return Verdict(min(similar, 0.59), False, f"a guessed frame that differs too much (visible {visible:.2f})")
    score = max(NEAR_FLOOR, min(0.995, 1.0 - 0.8 * visible))
    coincide = min(cover_a, cover_b) >= CONTAINMENT
    return Verdict(round(float(score), 4), True, f"crop {crop_loss:.2f} overlay {overlay_loss:.2f} light {light_loss:.2f} colour {colour_loss:.2f}", decided=coincide)


def is_flat(features: Features) -> bool:
    """Too plain to fingerprint: its grey levels span almost nothing."""
    low, high = features.levels
    return float(high - low) < 4.0


def _flat_verdict(a: Features, b: Features) -> Verdict:
    """Two pictures with too little detail to fingerprint (a blank page, a plain colour).

    Their fingerprints cannot tell two such pictures apart, so one colour and one level of
    light make them a near pair at the floor, never an exact one: only identical
    fingerprints (thumbnails, colours, levels, size) say the pixels are the same.
    """
    if _same_fingerprints(a, b):
        return Verdict(1.0, True, "flat pictures with identical fingerprints", decided=True)
    same = _colour_difference(a.colour, b.colour) < 0.03 and abs(float(a.levels.mean()) - float(b.levels.mean())) < 8
    return Verdict(NEAR_FLOOR if same else 0.0, same, "flat pictures: one colour, too little detail to say more", decided=True)


def _same_fingerprints(a: Features, b: Features) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in ("size", "levels", "thumb", "colour"))


def _refine(a_view: np.ndarray, b_view: np.ndarray, matrix: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """ECC refinement of the map B_view -> A_view (zero-mean normalised, so light-invariant).

    First as a free affine map: when that comes out a similarity, it is the answer (a panned
    or sheared other shot shows itself here). When it does not (an overlay can pull an affine
    fit askew), the estimate is refined again with rotation and translation only, the scale
    kept; when ECC fails or wanders off, the estimate stands as it was. ``ignore``: pixels
    of B left out of the fit (an overlay).
    """
    template = b_view.astype(np.float32)
    keep = None if ignore is None else np.where(ignore, 0, 255).astype(np.uint8)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-4)
    height, width = b_view.shape
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], np.float32)
    limit = 0.12 * max(a_view.shape)

    def near(candidate: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(candidate)) and np.abs(corners @ candidate.T - corners @ matrix.T).max() <= limit)

    try:
        # Coarse (half size) first, then one short pass at full size.
        half = _halve(matrix)
        coarse_keep = None if keep is None else cv2.resize(keep, _shrink(template).shape[::-1], interpolation=cv2.INTER_NEAREST)
        _, coarse = cv2.findTransformECC(_shrink(template), _shrink(a_view.astype(np.float32)), half, cv2.MOTION_AFFINE, criteria, coarse_keep, 3)
        _, affine = cv2.findTransformECC(template, a_view.astype(np.float32), _double(coarse), cv2.MOTION_AFFINE, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 8, 1e-4), keep, 3)
        if near(affine) and _shape_error(affine[:, :2].astype(np.float64))[0] <= MAX_SHAPE_ERROR:
            return affine
    except cv2.error:
        pass
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    resampled = cv2.warpAffine(a_view.astype(np.float32), matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(np.full(a_view.shape, 255, np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
    if keep is not None:
        mask = cv2.bitwise_and(mask, keep)
    try:
        _, euclidean = cv2.findTransformECC(template, resampled, np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN, criteria, mask, 3)
    except cv2.error:
        return matrix
    combined = (np.vstack([matrix, [0, 0, 1]]).astype(np.float64) @ np.vstack([euclidean, [0, 0, 1]]).astype(np.float64))[:2].astype(np.float32)
    return combined if near(combined) else matrix


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


def _shape_error(linear: np.ndarray) -> tuple[float, float]:
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


def _tilt(matrix: np.ndarray) -> float:
    """Degrees by which the map turns B, apart from quarter turns."""
    linear = matrix[:, :2].astype(np.float64)
    degrees = np.degrees(np.arctan2(linear[1, 0] - linear[0, 1], linear[0, 0] + linear[1, 1]))
    return float(abs((degrees + 45) % 90 - 45))


def _coverage(matrix: np.ndarray, a_shape: tuple[int, int], b_shape: tuple[int, int]) -> tuple[float, float]:
    """Share of A covered by B's frame, and share of B's frame that falls inside A."""
    b_height, b_width = b_shape
    a_height, a_width = a_shape
    corners = np.array([[-0.5, -0.5], [b_width - 0.5, -0.5], [b_width - 0.5, b_height - 0.5], [-0.5, b_height - 0.5]], np.float32)
    mapped = (corners @ matrix[:, :2].T.astype(np.float32)) + matrix[:, 2].astype(np.float32)
    if cv2.contourArea(mapped) < 0:
        mapped = mapped[::-1]
    frame = np.array([[-0.5, -0.5], [a_width - 0.5, -0.5], [a_width - 0.5, a_height - 0.5], [-0.5, a_height - 0.5]], np.float32)
    area, _ = cv2.intersectConvexConvex(np.ascontiguousarray(mapped), frame)
    b_area = abs(cv2.contourArea(mapped))
    if b_area <= 0:
        return 0.0, 0.0
    return float(area) / (a_width * a_height), float(area) / b_area


@dataclass(frozen=True)
class Structure:
    """How the aligned pictures compare (see ``_structure``)."""

    agreement: float  # share of the cells textured in both, overlay aside, whose gradients agree
    overall: float  # share of the cells textured in either that agree (overlays lower it)
    correlation: float  # gradient correlation, overlay aside
    difference: float  # mean difference of the raw grey levels, 0..1
    layout: float  # correlation of the broad light-and-dark layout
    overlay: np.ndarray  # pixels of B's frame under an overlay (see ``_overlaid``)


def _structure(a_view, b_view, matrix, a_levels, b_levels) -> Structure | None:
    """Gradient agreement after alignment, in B's frame."""
    height, width = b_view.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(a_view.astype(np.float32), matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpAffine(np.ones(a_view.shape, np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8)) > 0
    if valid.sum() < 64:
        return None
    first = cv2.GaussianBlur(warped, (0, 0), 1.2)
    second = cv2.GaussianBlur(b_view.astype(np.float32), (0, 0), 1.2)
    gradients, strengths = [], []
    for image in (first, second):
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
        rms = np.sqrt(np.mean((gx**2 + gy**2)[valid])) + 1e-6
        gradients.append((gx / rms, gy / rms))
        strengths.append(rms)
    (ax, ay), (bx, by) = gradients
    dot = (ax * bx + ay * by) * valid
    energy_a = (ax**2 + ay**2) * valid
    energy_b = (bx**2 + by**2) * valid

    cell = _cell_side(b_view.shape)
    rows, cols = height // cell, width // cell

    def cells(values: np.ndarray) -> np.ndarray:
        return values[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell).sum(axis=(1, 3))

    count = cells(valid.astype(np.float32))
    dots, sum_a, sum_b = cells(dot), cells(energy_a), cells(energy_b)
    inside = count >= 0.7 * cell * cell
    safe = np.maximum(count, 1)
    textured_a, textured_b = (sum_a / safe >= 0.05) & inside, (sum_b / safe >= 0.05) & inside
    agrees = dots / np.sqrt(sum_a * sum_b + 1e-9) >= CELL_AGREES
    either_mask, both_mask = textured_a | textured_b, textured_a & textured_b
    raw_a = a_view.astype(np.float32) / 255.0 * float(a_levels[1] - a_levels[0]) + float(a_levels[0])
    raw_b = b_view.astype(np.float32) / 255.0 * float(b_levels[1] - b_levels[0]) + float(b_levels[0])
    raw_warped = cv2.warpAffine(raw_a, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    overlay = either_mask & _overlaid(sum_a * strengths[0] ** 2, sum_b * strengths[1] ** 2)
    overlay_pixels = np.zeros_like(valid)
    overlay_pixels[: rows * cell, : cols * cell] = np.repeat(np.repeat(overlay, cell, axis=0), cell, axis=1)
    if overlay.any() and not _same_around(raw_warped, raw_b, valid, overlay_pixels, cell):
        overlay, overlay_pixels = np.zeros_like(overlay), np.zeros_like(overlay_pixels)
    content = both_mask & ~overlay
    both, agree_both = int(content.sum()), int((agrees & content).sum())
    either, agree_either = int(either_mask.sum()), int((agrees & either_mask).sum())
    pixels = valid & ~overlay_pixels
    if pixels.sum() < 64:
        pixels = valid
    correlation = float(dot[pixels].sum()) / float(np.sqrt(energy_a[pixels].sum() * energy_b[pixels].sum() + 1e-9))
    if both >= 4:
        agreement = agree_both / both
    else:
        agreement = 1.0 if correlation > 0.5 else 0.0
    overall = agree_either / either if either else agreement
    difference = float(np.abs(raw_warped - raw_b)[valid].mean() / 255.0)
    layout = _layout_correlation(warped, b_view.astype(np.float32), valid)
    return Structure(agreement, overall, correlation, difference, layout, overlay_pixels)


def _cell_side(shape: tuple[int, int]) -> int:
    """Side of the cells the aligned pictures are compared in (an eighth of the shorter side)."""
    return max(8, min(shape) // 8)


def _overlaid(energy_a: np.ndarray, energy_b: np.ndarray) -> np.ndarray:
    """Cells where one picture has edges the other lacks: text or a mark laid over it.

    An overlay adds sharp edges to one picture: where it lies, that picture's gradient
    energy far outweighs the other's (thumbnails are stretched to their full range, so a
    contrast edit does not do this), in the cell and in the cells around it (an edge shifted
    by a misalignment only moves energy to a neighbour). Such cells are a visible difference,
    not content that disagrees. Only the picture with more such cells carries an overlay:
    two different pictures have stronger edges each in their own places.
    """
    def lopsided(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        around = lambda cells: cv2.blur(cells.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
        limit = np.log(OVERLAY_ENERGY)
        return (np.log((first + 1e-3) / (second + 1e-3)) > limit) & (np.log((around(first) + 1e-3) / (around(second) + 1e-3)) > limit)

    on_a, on_b = lopsided(energy_a, energy_b), lopsided(energy_b, energy_a)
    return on_a if on_a.sum() > on_b.sum() else on_b


def _same_around(raw_a: np.ndarray, raw_b: np.ndarray, valid: np.ndarray, overlay_pixels: np.ndarray, cell: int) -> bool:
    """Whether the pictures are one picture around an overlay: outside it, grey levels equal
    up to a change of light.

    An overlay explains edges one picture has and the other lacks only if it is all that
    differs; two different pictures have edges each in their own places too, and also
    differ in light where neither has edges. The overlay's outline and shadow (one cell
    around it) are left out; the light may have been changed as well (a caption and a
    filter), so B's levels are compared with A's both as they are and mapped by the straight
    line that fits them best.
    """
    around = cv2.dilate(overlay_pixels.astype(np.uint8), np.ones((2 * cell + 1, 2 * cell + 1), np.uint8)) > 0
    rest = valid & ~around
    if rest.sum() < 64:
        return False  # nothing left to show they are one picture
    first, second = raw_a[rest].astype(np.float64), raw_b[rest].astype(np.float64)
    as_they_are = float(np.abs(first - second).mean())
    spread = float(first.var())
    slope = float(np.mean((first - first.mean()) * (second - second.mean()))) / spread if spread > 1.0 else 1.0  # least squares
    offset = float(second.mean()) - slope * float(first.mean())
    mapped = float(np.abs(slope * first + offset - second).mean()) if slope > 0 else as_they_are  # light changed, not inverted
    return min(as_they_are, mapped) / 255.0 <= OVERLAY_REST_DIFFERENCE


def _layout_correlation(first: np.ndarray, second: np.ndarray, valid: np.ndarray) -> float:
    """Correlation of the two aligned pictures blurred to their broad shapes (zero-mean, scaled:
    light, contrast and most colour edits keep it high; a different picture does not)."""
    broad_first = cv2.GaussianBlur(first, (0, 0), LAYOUT_BLUR)[valid]
    broad_second = cv2.GaussianBlur(second, (0, 0), LAYOUT_BLUR)[valid]
    if broad_first.std() < 1.0 or broad_second.std() < 1.0:
        return 1.0  # no layout to compare (a plain picture): the other checks decide
    return float(np.corrcoef(broad_first, broad_second)[0, 1])


def _colour_difference(first: np.ndarray, second: np.ndarray) -> float:
    """How differently coloured two images are overall (hue, tint, saturation), 0 = same."""

    def chroma(colour: np.ndarray) -> np.ndarray:
        rgb = colour.reshape(-1, 3).astype(np.float32) / 255.0
        red, green, blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        return np.stack([red - green, (red + green) / 2 - blue], axis=1)

    a, b = chroma(first), chroma(second)
    mean_shift = float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))
    saturation_shift = abs(float(np.linalg.norm(a, axis=1).mean() - np.linalg.norm(b, axis=1).mean()))
    return 1.5 * mean_shift + 1.0 * saturation_shift
