"""Comparison: how alike two aligned pictures are, with measures blind to changes of light.

``compare`` warps A onto B's frame and measures, cell by cell, whether the gradients agree,
which cells carry an overlay (text or a mark one picture has and the other lacks), how much
the grey levels differ and whether the broad layout of light and dark correlates: a
``Structure``. ``colour_difference`` compares the colour thumbnails overall,
``colour_conflicts`` place by place. Measures only: what they make of a pair is
``verdict``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CELL_AGREES = 0.5  # a cell agrees when its gradients' normalised dot product (a cosine) is at least this
OVERLAY_ENERGY = 4.0  # a cell where one picture's gradient energy is this many times the other's is overlaid
OVERLAY_REST_DIFFERENCE = 0.03  # ...only if, outside it, grey levels differ by no more than this (0..1), light change aside
LAYOUT_BLUR = 3.0  # pixels of the 160 px thumbnail
MIN_PIXELS = 64  # pixels (8 x 8) below which a region is too small to measure anything on
GRADIENT_BLUR = 1.2  # pixels: smoothing before gradients, so recompression noise and resampling do not make edges
CELLS_ACROSS = 8  # the shorter side is cut into this many cells, each large enough to hold some structure
MIN_CELL_SIDE = 8  # pixels: no cell smaller than this, however small the thumbnail
CELL_INSIDE = 0.7  # share of a cell's pixels that must fall inside the overlap for the cell to count
CELL_TEXTURED = 0.05  # mean gradient energy per pixel (of the picture's average, 1.0) that makes a cell textured, not plain
MIN_CONTENT_CELLS = 4  # textured cells shared by both below which agreement is read from the correlation alone
COLOUR_CELLS = 16  # B's frame is cut into this many cells each way to compare colours in: a pixel of its colour thumbnail each
MIN_COLOUR_CELLS = 12  # cells left to compare (inside the overlap, no text, no fine detail) below which colours are not compared place by place
SAME_COLOUR = 0.03  # two cells this close in colour (RGB distance, 0..1 a channel) are one colour...
OTHER_COLOUR = 0.15  # ...and an edit cannot have made them this far apart: five times as far, and more than noise
# Two pictures whose cells all lie nearer than this each (in any channel) cannot conflict:
# twins of one colour would be more than OTHER_COLOUR apart in the other. Most copies (a size,
# a format, a crop) are settled on this.
CONFLICT_FREE = (OTHER_COLOUR - SAME_COLOUR) / 2 / np.sqrt(3)
MAX_CELL_SPREAD = 16.0  # grey levels (of 255, standard deviation) within a cell above which it holds fine detail, not one colour
SPLIT_SHARE = 0.25  # a cell conflicts when more than this share of its colour twins is far from it in the other picture
TINT_WEIGHT = 1.5  # a shift of the mean hue or tint shows more than...
SATURATION_WEIGHT = 1.0  # ...the same change in saturation


@dataclass(frozen=True)
class Structure:
    """How the aligned pictures compare (see ``compare``)."""

    agreement: float  # share of the cells textured in both, overlay aside, whose gradients agree
    overall: float  # share of the cells textured in either that agree (overlays lower it)
    correlation: float  # gradient correlation, overlay aside
    difference: float  # mean difference of the raw grey levels, 0..1
    layout: float  # correlation of the broad light-and-dark layout
    overlay: np.ndarray  # pixels of B's frame under an overlay (see ``_lopsided``)
    unexplained: float  # share of the cells textured in either, overlay aside, that disagree: edges one picture lacks
    each_lacks: float  # the smaller of the two pictures' shares of their own textured cells (overlay aside) the other does not match
    textured: float  # share of the overlap's cells textured in the more textured picture: how much of the frame holds detail
    marked: np.ndarray  # cells (``cell_side``) where either picture has edges the other lacks (``overlay`` is one picture's)

    def marked_pixels(self) -> np.ndarray:
        """``marked`` spread over the pixels of B's frame."""
        return _pixels_of(self.marked, self.overlay, cell_side(self.overlay.shape))


@dataclass(frozen=True)
class Overlap:
    """A's view warped into B's frame by a pixel map, and where it covers B: what every
    measure of the two aligned pictures is taken over (see ``overlap``)."""

    warped: np.ndarray  # A's view in B's frame, float32
    b_float: np.ndarray  # B's view, float32
    valid: np.ndarray  # bool: B's pixels A covers, a few pixels in from its warped edge
    inside: np.ndarray  # the same as float32 0/1, for masked sums
    count: int  # how many pixels are valid


def compare(a_view, b_view, matrix, a_levels, b_levels) -> Structure | None:
    """Every measure of the two pictures aligned by ``matrix`` (``structure``); None when they overlap too little."""
    overlapping = overlap(a_view, b_view, matrix)
    return None if overlapping is None else structure(overlapping, a_levels, b_levels)


def overlap(a_view, b_view, matrix) -> Overlap | None:
    """A's view warped onto B's by ``matrix`` (B pixel -> A pixel); None when they share fewer than ``MIN_PIXELS``."""
    height, width = b_view.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(a_view.astype(np.float32), matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    covered = cv2.warpAffine(np.ones(a_view.shape, np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
    valid = cv2.erode(covered, np.ones((5, 5), np.uint8)) > 0
    count = int(np.count_nonzero(valid))
    if count < MIN_PIXELS:
        return None
    return Overlap(warped, b_view.astype(np.float32), valid, valid.astype(np.float32), count)


def layout(overlapping: Overlap) -> float:
    """Correlation of the broad light-and-dark layout over the overlap (``_layout_correlation``):
    a third of the cost of ``structure``, and all a first look at a pair only the hash relates needs."""
    return _layout_correlation(overlapping.warped, overlapping.b_float, overlapping.inside, overlapping.count)


def structure(overlapping: Overlap, a_levels, b_levels, layout_correlation: float | None = None) -> Structure:
    """Gradient agreement after alignment, in B's frame (``layout_correlation``: ``layout``'s, if
    already taken).

    Sums over the overlap are sums of products with its 0/1 mask, accumulated in double
    precision by OpenCV, and cell sums come from OpenCV's area resampling: picking the
    overlap's pixels out by a boolean mask in numpy, and summing cells by reshaping, took a
    third of the time, and a comparison is made for most candidates past the keypoint fit.
    """
    warped, b_float, valid, inside_overlap, valid_count = (
        overlapping.warped, overlapping.b_float, overlapping.valid, overlapping.inside, overlapping.count
    )
    height, width = b_float.shape
    first = cv2.GaussianBlur(warped, (0, 0), GRADIENT_BLUR)
    second = cv2.GaussianBlur(b_float, (0, 0), GRADIENT_BLUR)
    gradients, energies, strengths = [], [], []
    for image in (first, second):
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
        squared_inside = (gx * gx + gy * gy) * inside_overlap
        rms = np.sqrt(_sum(squared_inside) / valid_count) + 1e-6
        gradients.append((gx, gy))
        energies.append(squared_inside * np.float32(1.0 / (rms * rms)))
        strengths.append(rms)
    (ax, ay), (bx, by) = gradients
    energy_a, energy_b = energies
    dot = (ax * bx + ay * by) * (inside_overlap * np.float32(1.0 / (strengths[0] * strengths[1])))

    cell = cell_side(b_float.shape)
    rows, cols = height // cell, width // cell

    def cells(values: np.ndarray) -> np.ndarray:
        return _cell_sums(values, rows, cols, cell)

    count = np.rint(cells(inside_overlap))
    dots, sum_a, sum_b = cells(dot), cells(energy_a), cells(energy_b)
    inside = count >= CELL_INSIDE * cell * cell
    safe = np.maximum(count, 1)
    textured_a, textured_b = (sum_a / safe >= CELL_TEXTURED) & inside, (sum_b / safe >= CELL_TEXTURED) & inside
    agrees = dots / np.sqrt(sum_a * sum_b + 1e-9) >= CELL_AGREES
    either_mask, both_mask = textured_a | textured_b, textured_a & textured_b
    # A's raw grey levels, warped, are its warped thumbnail rescaled: the warp is linear.
    raw_warped = warped * np.float32(float(a_levels[1] - a_levels[0]) / 255.0) + np.float32(a_levels[0])
    raw_b = b_float * np.float32(float(b_levels[1] - b_levels[0]) / 255.0) + np.float32(b_levels[0])
    on_a, on_b = _lopsided(sum_a * strengths[0] ** 2, sum_b * strengths[1] ** 2)
    overlay = either_mask & (on_a if on_a.sum() > on_b.sum() else on_b)  # the picture with more such cells carries it
    overlay_pixels = _pixels_of(overlay, valid, cell)
    marked = either_mask & (on_a | on_b)
    if overlay.any() and not _same_around(raw_warped, raw_b, valid, overlay_pixels, cell):
        overlay, overlay_pixels = np.zeros_like(overlay), np.zeros_like(overlay_pixels)
    content = both_mask & ~overlay
    both, agree_both = int(np.count_nonzero(content)), int(np.count_nonzero(agrees & content))
    either, agree_either = int(np.count_nonzero(either_mask)), int(np.count_nonzero(agrees & either_mask))
    pixels = None  # the overlap, which ``dot`` and the energies are zero outside already
    if overlay.any():
        outside_overlay = valid & ~overlay_pixels
        if np.count_nonzero(outside_overlay) >= MIN_PIXELS:
            pixels = outside_overlay.astype(np.float32)
    correlation = _sum(dot, pixels) / float(np.sqrt(_sum(energy_a, pixels) * _sum(energy_b, pixels) + 1e-9))
    if both >= MIN_CONTENT_CELLS:
        agreement = agree_both / both
    else:
        agreement = 1.0 if correlation > 0.5 else 0.0
    overall = agree_either / either if either else agreement
    unexplained = _share_disagreeing(either_mask & ~overlay, agrees)
    each_lacks = min(_share_disagreeing(textured_a & ~overlay, agrees), _share_disagreeing(textured_b & ~overlay, agrees))
    difference = _sum(cv2.absdiff(raw_warped, raw_b), inside_overlap) / valid_count / 255.0
    textured = max(int(textured_a.sum()), int(textured_b.sum())) / max(1, int(inside.sum()))
    if layout_correlation is None:
        layout_correlation = layout(overlapping)
    return Structure(agreement, overall, correlation, difference, layout_correlation, overlay_pixels, unexplained, each_lacks, textured, marked)


def _sum(values: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The sum of float32 ``values`` (where the float32 0/1 ``mask`` is 1), accumulated in double precision."""
    return float(cv2.sumElems(values if mask is None else values * mask)[0])


def _cell_sums(values: np.ndarray, rows: int, cols: int, cell: int) -> np.ndarray:
    """Sums of float32 ``values`` over ``rows`` x ``cols`` square cells of ``cell`` pixels (the
    picture's whole cells): the cells' means by area resampling, times their area."""
    whole = values[: rows * cell, : cols * cell]
    return cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float64) * (cell * cell)


def _share_disagreeing(textured: np.ndarray, agrees: np.ndarray) -> float:
    """Share of the ``textured`` cells whose gradients disagree; 0 when they are too few to say.

    Taken over the cells textured in either picture it says how many edges one picture has
    that the other lacks; over each picture's own cells, in which of the two they are (an
    edit adds edges to one picture or takes them from one: see ``verdict.MAX_UNEXPLAINED``).
    """
    count = int(textured.sum())
    return float((textured & ~agrees).sum()) / count if count >= MIN_CONTENT_CELLS else 0.0


def cell_side(shape: tuple[int, int]) -> int:
    """Side of the cells the aligned pictures are compared in (an eighth of the shorter side)."""
    return max(MIN_CELL_SIDE, min(shape) // CELLS_ACROSS)


def _pixels_of(cells: np.ndarray, like: np.ndarray, cell: int) -> np.ndarray:
    """Boolean ``cells`` spread over the pixels they cover, in an array shaped as ``like``."""
    pixels = np.zeros_like(like)
    rows, cols = cells.shape
    pixels[: rows * cell, : cols * cell] = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)
    return pixels


def _lopsided(energy_a: np.ndarray, energy_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells where A has edges B lacks, and cells where B has edges A lacks: text or a mark
    laid over one of them.

    An overlay adds sharp edges to one picture: where it lies, that picture's gradient
    energy far outweighs the other's (thumbnails are stretched to their full range, so a
    contrast edit does not do this), in the cell and in the cells around it (an edge shifted
    by a misalignment only moves energy to a neighbour). Such cells are a visible difference,
    not content that disagrees. Only the picture with more such cells carries an overlay
    (``structure``): two different pictures have stronger edges each in their own places.
    """

    def lopsided(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        def around(cells: np.ndarray) -> np.ndarray:
            return cv2.blur(cells.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)

        limit = np.log(OVERLAY_ENERGY)
        return (np.log((first + 1e-3) / (second + 1e-3)) > limit) & (np.log((around(first) + 1e-3) / (around(second) + 1e-3)) > limit)

    return lopsided(energy_a, energy_b), lopsided(energy_b, energy_a)


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
    count = int(np.count_nonzero(rest))
    if count < MIN_PIXELS:
        return False  # nothing left to show they are one picture
    mask = rest.astype(np.float32)
    as_they_are = _sum(cv2.absdiff(raw_a, raw_b), mask) / count
    first_mean, second_mean = _sum(raw_a, mask) / count, _sum(raw_b, mask) / count
    first_centred = (raw_a - np.float32(first_mean)) * mask
    spread = _sum(first_centred * first_centred) / count
    covariance = _sum(first_centred * (raw_b - np.float32(second_mean))) / count
    slope = covariance / spread if spread > 1.0 else 1.0  # least squares
    offset = second_mean - slope * first_mean
    mapped = as_they_are
    if slope > 0:  # light changed, not inverted
        mapped = _sum(cv2.absdiff(raw_a * np.float32(slope) + np.float32(offset), raw_b), mask) / count
    return min(as_they_are, mapped) / 255.0 <= OVERLAY_REST_DIFFERENCE


def _layout_correlation(first: np.ndarray, second: np.ndarray, inside: np.ndarray, count: int) -> float:
    """Correlation of the two aligned pictures blurred to their broad shapes (zero-mean, scaled:
    light, contrast and most colour edits keep it high; a different picture does not), over
    the ``count`` pixels where ``inside`` (float32, 0 or 1) is 1."""

    def centred(image: np.ndarray) -> np.ndarray:
        broad = cv2.GaussianBlur(image, (0, 0), LAYOUT_BLUR)
        return (broad - np.float32(_sum(broad, inside) / count)) * inside

    # Sums of products, not np.corrcoef, whose float64 matrix product took up to a fifth of
    # the comparison's time.
    broad_first, broad_second = centred(first), centred(second)
    first_spread, second_spread = _sum(broad_first * broad_first), _sum(broad_second * broad_second)
    if min(first_spread, second_spread) < count:  # a standard deviation under 1 grey level
        return 1.0  # no layout to compare (a plain picture): the other checks decide
    return max(-1.0, min(1.0, _sum(broad_first * broad_second) / float(np.sqrt(first_spread * second_spread))))


def colour_conflicts(a_colour: np.ndarray, b_colour: np.ndarray, matrix: np.ndarray, overlapping: Overlap, overlay: np.ndarray) -> float | None:
    """How far one picture's colours are from being a function of the other's, over the
    overlap's cells (overlay aside): the share of cells a good part of whose colour twins in
    one picture (cells of the same colour, not next to it: ``SPLIT_SHARE``) are far from it in
    the other; the smaller share of the two directions. None when too few cells lie inside
    the overlap.

    An edit changes every pixel of one colour alike (brightness, contrast, saturation, a
    tint, a turn of hue, greyscale, curves): the same colour in, the same colour out, in at
    least one direction (greyscale cannot be undone). Two tiles of one pattern whose blocks
    are coloured or lit otherwise place by place are not: where one has a colour, the other
    has it in some places and another colour in others. A cell counts only when a good part
    of its twins disagree with it, so a caption the overlay missed counts its own cells, not
    every cell of the colour it covers. Twins next to each other are not compared: a little
    misalignment or blur mixes the colours of neighbouring cells.

    ``a_colour`` and ``b_colour`` are ``relation.colour_views`` (A's stretched to its grey
    view's size); ``matrix`` maps B's grey view's pixels to A's; ``overlapping`` and
    ``overlay`` are in B's grey view.
    """
    clear = (overlapping.valid & ~overlay).astype(np.float32)
    inside = cv2.resize(clear, (COLOUR_CELLS, COLOUR_CELLS), interpolation=cv2.INTER_AREA).ravel() >= 1.0 - 1e-6
    inside &= _plain_cells(overlapping.warped) & _plain_cells(overlapping.b_float)
    if int(inside.sum()) < MIN_COLOUR_CELLS:
        return None
    a_cells, b_cells = _cells(a_colour, b_colour, matrix, overlapping.valid.shape)
    first, second = a_cells.reshape(-1, 3)[inside], b_cells.reshape(-1, 3)[inside]
    if float(np.abs(first - second).max()) < CONFLICT_FREE:
        return 0.0
    apart = _CELLS_APART[inside][:, inside]
    first_distances, second_distances = _squared_distances(first), _squared_distances(second)
    return min(_conflicting_share(first_distances, second_distances, apart), _conflicting_share(second_distances, first_distances, apart))


def _cells(a_colour: np.ndarray, b_colour: np.ndarray, matrix: np.ndarray, b_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A's colour laid on B's frame by ``matrix`` and B's, each averaged over the cells of B's
    frame (``COLOUR_CELLS`` each way): both thumbnails stretched smoothly to the grey views'
    sizes first, so that a crop's finer thumbnail and its original's coarser one are averaged
    over the same areas of the scene."""
    height, width = b_shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(a_colour, np.asarray(matrix, np.float64), (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    b_view = cv2.resize(b_colour, (width, height), interpolation=cv2.INTER_LINEAR)
    grid = (COLOUR_CELLS, COLOUR_CELLS)
    return cv2.resize(warped, grid, interpolation=cv2.INTER_AREA), cv2.resize(b_view, grid, interpolation=cv2.INTER_AREA)


def _plain_cells(grey: np.ndarray) -> np.ndarray:
    """Which cells of ``grey`` (a stretched grey view, 0..255) hold one level of light, not fine
    detail: a cell's mean colour follows from its pixels' colours through any edit only if
    they are alike. (Lighten a fine black and white texture and its whites clip: the cell's
    mean grows less than a plain cell's of the same mean.)"""
    grid = (COLOUR_CELLS, COLOUR_CELLS)
    mean = cv2.resize(grey, grid, interpolation=cv2.INTER_AREA)
    spread = cv2.resize(grey * grey, grid, interpolation=cv2.INTER_AREA) - mean * mean
    return (spread < MAX_CELL_SPREAD * MAX_CELL_SPREAD).ravel()


def _cells_apart(side: int) -> np.ndarray:
    """For every two cells of a ``side`` x ``side`` grid (row by row), whether they are not neighbours."""
    rows, cols = np.divmod(np.arange(side * side), side)
    return (np.abs(rows[:, None] - rows[None, :]) > 1) | (np.abs(cols[:, None] - cols[None, :]) > 1)


_CELLS_APART = _cells_apart(COLOUR_CELLS)


def _squared_distances(colours: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (0..1 a channel) between every two of ``colours`` (n x 3, float32)."""
    lengths = np.einsum("ij,ij->i", colours, colours)
    distances = colours @ colours.T
    distances *= -2.0
    distances += lengths[:, None]
    distances += lengths[None, :]
    return distances


def _conflicting_share(source: np.ndarray, target: np.ndarray, apart: np.ndarray) -> float:
    """Share of cells more than ``SPLIT_SHARE`` of whose twins (of the same colour in
    ``source``, ``apart`` from them) have a colour in ``target`` far from theirs (squared distances)."""
    twins = apart & (source < SAME_COLOUR * SAME_COLOUR)
    far = np.count_nonzero(twins & (target > OTHER_COLOUR * OTHER_COLOUR), axis=1)
    return float(np.count_nonzero(far > SPLIT_SHARE * np.count_nonzero(twins, axis=1))) / len(source)


def colour_difference(first: np.ndarray, second: np.ndarray) -> float:
    """How differently coloured two images are overall (hue, tint, saturation), 0 = same."""

    def chroma(colour: np.ndarray) -> np.ndarray:
        rgb = colour.reshape(-1, 3).astype(np.float32) / 255.0
        red, green, blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        return np.stack([red - green, (red + green) / 2 - blue], axis=1)

    a, b = chroma(first), chroma(second)
    mean_shift = float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))
    saturation_shift = abs(float(np.linalg.norm(a, axis=1).mean() - np.linalg.norm(b, axis=1).mean()))
    return TINT_WEIGHT * mean_shift + SATURATION_WEIGHT * saturation_shift
