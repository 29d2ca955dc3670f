"""The verdict on one relation: a duplicate or not, and its score on Flow's scale.

``verify`` refines a relation (``alignment``), compares the aligned pictures
(``comparison``) and applies the rule the package docstring states: containment, a
similarity map, no tilt, content and layout that agree, and limits for large crops and
guessed relations; then scores what is visibly different. Plain pictures, with nothing to
align, are judged on colour and light alone (``is_flat``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dupe_scanner.analysis.features import Features
from dupe_scanner.analysis.verify import alignment, comparison
from dupe_scanner.analysis.verify.alignment import MAX_SHAPE_ERROR
from dupe_scanner.analysis.verify.relation import Relation, colour_views, views

CONTAINMENT = 0.985  # the smaller frame must lie this much inside the larger
MAX_TILT = 0.6  # degrees: an edit turns a picture by quarter turns only; another shot may be tilted a little
MIN_AGREEMENT = 0.45  # share of textured cells whose gradients agree after alignment
MIN_GRADIENT_CORRELATION = 0.25  # correlation of the aligned gradients (overlay aside): an edit keeps most edges where they were
NEAR_FLOOR = 0.61  # a verified pair never scores below this (the near-duplicate default is 0.6)
OTHER_SHOT_AGREEMENT = 0.75  # aligned this well yet neither frame inside the other: another shot, decided
OTHER_SHOT_CORRELATION = 0.6  # ...with gradients this well correlated: the overlaps are truly the same scene
CROPPED = 0.15  # a frame cut this much (share of the larger frame's area)...
MAX_CROPPED_OVERLAY = 0.10  # ...must agree nearly everywhere: no more disagreeing area than this
MIN_LAYOUT_CORRELATION = 0.55  # broad light-and-dark layout of the aligned pictures (see comparison._layout_correlation)
# The same layout at the whole-frame estimate, before any alignment, when the hash alone
# suggests the pair (no keypoint relation): below this, nothing is aligned or searched. A
# whole-frame edit keeps its layout where the hash put it, and a crop near enough for the
# hash to find shifts it only a little. Chosen on the tune split's candidates of that kind:
# its 1,439 verified pairs read 0.51 and up, 0.57 and up when the hash proposed them; in the
# library of 16,000 tiles, 29 % of such strangers the hash proposed read below it, and 62 %
# of those proposed by shared descriptors.
MIN_FIRST_LAYOUT = 0.4
# Two textured pictures (each filled its keypoint quota) that the keypoints relate from neither
# side, with frames of one shape (``ONE_SHAPE``) and only the hash relating them: the edits that
# defeat a textured picture's keypoints (heavy noise or blur, a turned colour, a pattern
# washed out) move no edge, so the gradients correlate where the frames already lie; below
# this they are not aligned at all. Chosen on the tune split's candidates of that kind: its 85
# verified pairs of one shape read 0.379 and up (0.898 and up but for a 50 % text block over a
# watermark); in bench/scale's camera library of 2,000, its 734 such candidates (none a copy,
# a quarter of the verification CPU) read 0.14 in the median and 0.56 at most, 556 under 0.3.
MIN_UNMOVED_CORRELATION = 0.3
# Frames of one shape: the whole-frame estimate's ``alignment.stretch`` at most this. A crop to
# another shape is off by its cut at the estimate (the tune split's 5 and 10 % crops, against
# a noisy copy, read 0.04 to 0.42 there and stretch 0.013 and 0.022), so it is aligned as before.
ONE_SHAPE = 0.005
# ...and when the two frames are of other shapes (the whole-frame estimate is no similarity,
# ``alignment.stretch``), so only one cut from the other can be a copy. A crop near enough
# for the hash keeps its layout; two strangers of other shapes laid frame on frame rarely do,
# and each costs two alignments and a template search (such pairs were over a third of the
# verification CPU in the library of 16,000 tiles). Chosen on the tune split's candidates of that kind: its 110
# verified pairs read 0.566 and up (all but one 0.76 and up); in the library, 47 % of such
# pairs read below it, 31 % below ``MIN_FIRST_LAYOUT``.
MIN_FIRST_LAYOUT_OTHER_SHAPES = 0.55
# ...and past that, frames whose shapes differ this much (``alignment.stretch`` of the
# whole-frame estimate) are not aligned frame on frame at all: an alignment from that far
# hardly ever ends a similarity (``alignment.MAX_COARSE_SHAPE_ERROR``), and only a crop can
# relate them, which the template search that follows looks for. In the library of 16,000 tiles such pairs were most of the pairs the
# hash proposed between smooth pictures; left unaligned, 20,000 of its stored pairs scored
# again kept every verdict. Chosen on the tune split: at 0.1 none of its 15,000 pairs changed
# verdict, at 0.04 eleven verified pairs were lost.
MAX_ALIGNED_STRETCH = 0.1
# A relation the template search guessed (``guessed``) must not need the score floor; before
# aligning it, its cut and the colour change already show how visible the difference is at
# the least. The alignment moves the cut a little: on the template relations of the tune split
# and of the library of 16,000 tiles (370) refining it shrank the cut by 0.022 at most. Less
# this, a guess already too visible is rejected unaligned: about three quarters of those in
# the library, none of those that verified on the tune split.
GUESS_CUT_SLACK = 0.05
# Share of the textured cells, overlay aside, with edges one picture has and the other lacks
# (``Structure.unexplained``) beyond which the two are different pictures, when each of them
# has such edges: each lacks this share of the other's (``Structure.each_lacks``). An edit
# adds edges to one picture only or takes them from one only. On the tune split no verified
# positive came above 0.53 of the first (large text blocks, a tiled watermark, heavy noise).
MAX_UNEXPLAINED = 0.6
MIN_EACH_LACKS = 0.25
# A subject on a plain ground (a nebula on a black sky, an object on a white table) fills few
# cells, and a round blob's edges point outwards like any other blob's: two such pictures
# agree cell by cell whatever their subjects. Where detail fills less than SMALL_SUBJECT of
# the frame's cells in both pictures and no keypoints relate them, only the gradients'
# correlation, taken pixel by pixel, tells one subject from another, and it must reach
# MIN_SMALL_SUBJECT_CORRELATION. Chosen on the tune split's 29,862 verified pairs: its 211
# positives of that kind (below 0.3) correlate at 0.74 and up (0.96 and up below 0.25);
# nebulae of other objects read 0.57 to 0.70 (bench/README.md, "Small subjects on a plain ground").
SMALL_SUBJECT = 0.3
MIN_SMALL_SUBJECT_CORRELATION = 0.7
# An edit changes every pixel of one colour alike (light, contrast, saturation, a tint, a turn
# of hue, greyscale): where one picture has one colour, the other has one colour too, in one
# direction at least. Two tiles of one pattern whose blocks are coloured or lit otherwise
# place by place are not so: more than this share of their cells disagree with a good part
# of their colour twins (``comparison.colour_conflicts``). Chosen on the tune split: the
# positives of every third of its verified pairs (12,070) read 0.075 at most; in the library
# of 16,000 tiles, 11 of the 51 wrong pairs that verified read over it, and none of its 648
# right ones (bench/README.md, "One colour in, one colour out").
MAX_COLOUR_CONFLICTS = 0.1
# Another shot of a flat scene from another place (a screen, a wall, a wallpaper seen from the
# side) is bent by perspective, which no edit does: the affine alignment fits it only on
# average. Where that alignment leaves more misfit than MIN_BEND_MISFIT (1 - the ECC
# correlation, what either picture has and the other lacks aside), a perspective map is
# fitted from it (``alignment.bend``); when that map departs from every affine map by more
# than MAX_BEND of the frame's diagonal and leaves less than MAX_BEND_LEFT of the misfit, the
# pair is another shot. An edit's misfit is light, noise or colour, which no map explains.
# Chosen on the tune split, the map fitted at half size: of its 1,810 verified pairs of an
# original and an edit, the 17 a perspective map departs from by more than MAX_BEND leave 0.72
# of their misfit or more, and none of its 41,874 verified pairs of two edits of one original
# is rejected; of the 20 views from the side it verified, 13 bend by 0.034 to 0.040 and leave
# 0.31 or less, and are rejected.
MIN_BEND_MISFIT = 0.01
MAX_BEND = 0.02
MAX_BEND_LEFT = 0.45

# Scores of a pair that fails. The score is on Flow's scale, where 0.6 is the lowest score of
# an edited copy and the default near-duplicate threshold: a failure must stay below it.
REJECTED_SCALE = 0.5  # a failed pair scores this times agreement x correlation: how alike it looked, at most 0.5
REJECTED_CEILING = 0.59  # and never more than this, just under 0.6, whatever the measures say (a guard: the product above cannot pass 0.5)
MIN_OVERLAP = 0.05  # share of either frame the other must cover (more than) before anything is compared; else "no overlap", 0

# Scores of a pair that passes: 1.0 less SCORE_PER_VISIBLE per unit of visible difference,
# kept between NEAR_FLOOR and MAX_NEAR_SCORE.
OVERLAY_TOLERANCE = 0.05  # share of disagreeing textured cells forgiven as misalignment noise before it counts as overlay
LIGHT_TOLERANCE = 0.005  # mean grey-level difference (0..1) forgiven as recompression noise before it counts as light change
LIGHT_WEIGHT = 2.0  # a change of light weighs twice its mean grey-level difference (0..1): small differences are visible
IDENTICAL_VISIBLE = 0.004  # less visible difference than this, same size, no turn or mirror: pixel-identical (1.0)
SCORE_PER_VISIBLE = 0.8  # score lost per unit of visible difference: a 10 % crop and nothing else scores 0.92
MAX_NEAR_SCORE = 0.995  # a pair that is not pixel-identical never scores 1.0, however small its difference
SCORE_DECIMALS = 4  # a verified score is rounded to this many decimals: the measures behind it carry no more

# Plain pictures (nothing to align).
FLAT_SPAN = 4.0  # grey levels (of 255) the whole picture spans, below which it is flat: a blank page, a plain colour
FLAT_SAME_COLOUR = 0.03  # colour difference (``comparison.colour_difference``) under which two flat pictures are one colour
FLAT_SAME_LIGHT = 8  # grey levels (of 255) by which two flat pictures' mean light may differ and still be one level

REALIGN_MARGIN_CELLS = 2  # cells left out on every side of an overlay when aligning again without it (outline, shadow, tiled rows)


@dataclass(frozen=True)
class Verdict:
    score: float
    verified: bool
    reason: str
    # No other relation needs trying: the frames coincide (verified, nothing cropped), they
    # align well but each shows a part of the scene the other lacks (another shot), or only
    # the hash relates them and their layouts disagree (``MIN_FIRST_LAYOUT``).
    decided: bool = False
    # Failed on containment alone: the content agreed, but neither aligned frame lay inside the
    # other. What a crop aligned from its original's side can look like (``pairing.score_pair``).
    unnested: bool = False


def verify(
    a: Features, b: Features, relation: Relation, guessed: bool = False, hash_alone: bool = False, textured_strangers: bool = False
) -> Verdict:
    """Judge one relation, after refining it on the thumbnails.

    ``guessed``: the relation comes from a template search, not from the hash or from
    keypoint matches; with nothing else behind it, the aligned pictures must also look
    alike (the visible difference within what a verified pair may show above the floor).
    ``hash_alone``: a whole-frame relation that only the hash suggests (no keypoint
    relation): its broad layout must correlate before it is aligned (``MIN_FIRST_LAYOUT``, or
    ``MIN_FIRST_LAYOUT_OTHER_SHAPES`` for frames of other shapes), or the pair is decided as
    it stands; frames of shapes further apart (``MAX_ALIGNED_STRETCH``) are judged as they
    lie, unaligned. ``textured_strangers`` (with ``hash_alone``): both pictures are textured
    and the keypoints relate them from neither side; frames of one shape must then correlate
    where they lie (``MIN_UNMOVED_CORRELATION``), or the pair is decided unaligned. A guessed
    relation whose cut and colour change alone show more than a guess may
    (``GUESS_CUT_SLACK``) is rejected before it is aligned.
    """
    a_view, b_view = views(a, b, relation)
    if is_flat(a) and is_flat(b):  # nothing to align: plain pictures match on colour alone
        return _flat_verdict(a, b)
    compared = _Comparisons(a, b, relation, a_view, b_view)
    if hash_alone:
        first_layout = compared.layout_at(relation.matrix)
        if first_layout is not None and first_layout < _first_layout_floor(relation.matrix):
            reason = f"light and dark laid out differently before any alignment (layout {first_layout:.2f}), and no keypoints relate them"
            return Verdict(_laid_out_differently_score(first_layout), False, reason, decided=True)
        if textured_strangers and (moved := _moved_at_first_sight(compared, relation.matrix)) is not None:
            return moved
        if alignment.stretch(relation.matrix) > MAX_ALIGNED_STRETCH:
            return _judge(a, b, relation, compared, relation.matrix, guessed, keypoints_relate=False)  # "not a similarity", unaligned
    if guessed:
        least_visible = _least_visible(a, b, relation, a_view, b_view)
        if _too_visible_for_a_guess(least_visible):
            # Scored as it lies, as a failed alignment that kept the estimate would be: grouping
            # reads how alike a rejected pair looked (``groups.KINSHIP``).
            first = compared.at(relation.matrix)
            reason = f"a guessed frame that differs too much before any alignment (visible {least_visible:.2f} or more)"
            return Verdict(0.0 if first is None else _rejected_score(first), False, reason)
    keypoints_relate = not (hash_alone or guessed)
    if alignment.turned_beyond_reach(relation.matrix, a_view.shape, b_view.shape):
        # Strangers' keypoints agree on any angle; no refinement from this far can verify,
        # so the estimate is judged as it lies ("not a similarity") without aligning it.
        return _judge(a, b, relation, compared, relation.matrix, guessed, keypoints_relate)
    verdict = _judge(a, b, relation, compared, alignment.refine(a_view, b_view, relation.matrix), guessed, keypoints_relate)
    if verdict.verified:
        return verdict
    # Large text or a mark pulls the alignment its way: align once more on the picture alone,
    # two cells around the overlay left out too (its outline, its shadow, the rows of a tiled
    # mark). The overlay is found at the first estimate: the refined one may lean towards it.
    before = compared.at(relation.matrix)
    if before is None or not before.overlay.any():
        return verdict
    margin = 2 * REALIGN_MARGIN_CELLS * comparison.cell_side(b_view.shape) + 1
    overlay = cv2.dilate(before.overlay.astype(np.uint8), np.ones((margin, margin), np.uint8)) > 0
    realigned = _judge(a, b, relation, compared, alignment.refine(a_view, b_view, relation.matrix, ignore=overlay), guessed, keypoints_relate)
    return realigned if realigned.score > verdict.score else verdict


def _least_visible(a: Features, b: Features, relation: Relation, a_view: np.ndarray, b_view: np.ndarray) -> float:
    """The visible difference (``_judge``'s) that aligning ``relation`` can leave at the least: its
    cut, less what the alignment may win back (``GUESS_CUT_SLACK``), and the colour change."""
    cover_a, cover_b = alignment.coverage(relation.matrix, a_view.shape, b_view.shape)
    return _least_visible_at(a, b, min(cover_a, cover_b))


def _least_visible_at(a: Features, b: Features, cover: float) -> float:
    """A guessed frame's least visible difference when it covers ``cover`` of the larger frame:
    its cut less ``GUESS_CUT_SLACK``, and the colour change."""
    return max(0.0, 1.0 - cover - GUESS_CUT_SLACK) + comparison.colour_difference(a.colour, b.colour)


def _too_visible_for_a_guess(visible: float) -> bool:
    return 1.0 - SCORE_PER_VISIBLE * visible < NEAR_FLOOR


def guess_may_verify(a: Features, b: Features, orientation: int) -> bool:
    """Whether some frame a template search could guess (``relation.from_template`` in this
    orientation) might verify, before the search is paid for.

    A guessed frame is rejected unaligned when its cut and the colour change alone show more
    than a guess may (``_least_visible``). The least cut a guess can leave is that of the
    smaller frame fitted whole inside the larger at the largest scale, as the search's first
    scale puts it: one minus the ratio of the two frames' aspects (turned as ``orientation``
    turns A), and a pixel's rounding. Where even that cut, and the colour change, show too
    much, every frame the search could find is rejected unaligned: no verdict depends on it.
    Between smooth strangers of other shapes or colours this saves most template searches
    (seven in ten in the library of 16,000 tiles, about a ninth of its verification CPU).
    """
    a_height, a_width = a.thumb.shape if orientation % 2 == 0 else a.thumb.shape[::-1]
    b_height, b_width = b.thumb.shape
    a_aspect, b_aspect = a_width / a_height, b_width / b_height
    rounding = 1.0 / min(a_height, a_width, b_height, b_width)
    largest_cover = min(1.0, min(a_aspect, b_aspect) / max(a_aspect, b_aspect) + rounding)
    return not _too_visible_for_a_guess(_least_visible_at(a, b, largest_cover))


def _moved_at_first_sight(compared: _Comparisons, matrix: np.ndarray) -> Verdict | None:
    """The verdict on two textured strangers of one shape whose gradients do not correlate at
    the whole-frame estimate (``MIN_UNMOVED_CORRELATION``); None when they are to be aligned."""
    if alignment.stretch(matrix) > ONE_SHAPE:
        return None
    first = compared.at(matrix)
    if first is None or first.correlation >= MIN_UNMOVED_CORRELATION:
        return None
    reason = (
        f"two textured pictures no keypoints relate, their gradients uncorrelated where the frames lie "
        f"(correlation {first.correlation:.2f}): not one picture edited"
    )
    return Verdict(_rejected_score(first), False, reason, decided=True)


def _first_layout_floor(matrix: np.ndarray) -> float:
    """How well a pair only the hash relates must be laid out alike before it is aligned."""
    return MIN_FIRST_LAYOUT_OTHER_SHAPES if alignment.stretch(matrix) > MAX_SHAPE_ERROR else MIN_FIRST_LAYOUT


class _Comparisons:
    """``comparison.structure`` of one pair of views, made once for each pixel map it is asked at.

    A refinement that fails keeps its estimate, so the first estimate was compared as the
    verdict, again for its overlay, and again when aligning without the overlay failed too.
    Between two smooth strangers whose frames differ in shape (half the CPU of a first scan in
    a library of 16,000 tiles), that was 2.9 comparisons a pair, a sixth of its cost; now 1.2.
    The layout alone (``layout_at``) is a third of a comparison: a pair only the hash relates
    whose layouts disagree at first sight (an eighth of the candidates in that library) is
    settled on it, and one that goes on has it taken once.
    """

    def __init__(self, a: Features, b: Features, relation: Relation, a_view: np.ndarray, b_view: np.ndarray) -> None:
        self.a, self.b, self.relation, self.a_view, self.b_view = a, b, relation, a_view, b_view
        self._overlaps: dict[bytes, comparison.Overlap | None] = {}
        self._layouts: dict[bytes, float] = {}
        self._made: dict[bytes, comparison.Structure | None] = {}

    def colour_conflicts(self, matrix: np.ndarray, structure: comparison.Structure) -> float | None:
        """``comparison.colour_conflicts`` of the views aligned by ``matrix``, leaving out what
        either picture has edges the other lacks in (``structure.marked``: its overlay, or a
        caption on the other copy)."""
        overlapping = self._overlap(_key(matrix), matrix)
        if overlapping is None:
            return None
        a_colour, b_colour = colour_views(self.a, self.b, self.relation)
        return comparison.colour_conflicts(a_colour, b_colour, matrix, overlapping, structure.marked_pixels())

    def layout_at(self, matrix: np.ndarray) -> float | None:
        """The broad layouts' correlation at ``matrix`` (``comparison.layout``); None when the views hardly overlap."""
        key = _key(matrix)
        overlapping = self._overlap(key, matrix)
        if overlapping is None:
            return None
        if key not in self._layouts:
            self._layouts[key] = comparison.layout(overlapping)
        return self._layouts[key]

    def at(self, matrix: np.ndarray) -> comparison.Structure | None:
        key = _key(matrix)
        if key not in self._made:
            overlapping = self._overlap(key, matrix)
            made = None
            if overlapping is not None:
                made = comparison.structure(overlapping, self.a.levels, self.b.levels, self._layouts.get(key))
            self._made[key] = made
        return self._made[key]

    def _overlap(self, key: bytes, matrix: np.ndarray) -> comparison.Overlap | None:
        if key not in self._overlaps:
            self._overlaps[key] = comparison.overlap(self.a_view, self.b_view, matrix)
        return self._overlaps[key]


def _key(matrix: np.ndarray) -> bytes:
    return np.asarray(matrix, np.float32).tobytes()


def _judge(
    a: Features, b: Features, relation: Relation, compared: _Comparisons, matrix: np.ndarray, guessed: bool, keypoints_relate: bool
) -> Verdict:
    shape_error, _ = alignment.shape_error(matrix[:, :2].astype(np.float64))
    cover_a, cover_b = alignment.coverage(matrix, compared.a_view.shape, compared.b_view.shape)
    if cover_a <= MIN_OVERLAP or cover_b <= MIN_OVERLAP:
        return Verdict(0.0, False, "no overlap")
    structure = compared.at(matrix)
    if structure is None:
        return Verdict(0.0, False, "no overlap")
    agreement, overall, correlation = structure.agreement, structure.overall, structure.correlation
    difference, layout = structure.difference, structure.layout
    similar = _rejected_score(structure)
    if shape_error > MAX_SHAPE_ERROR:
        return Verdict(similar, False, f"not a similarity (shape error {shape_error:.3f})")
    tilt = alignment.tilt(matrix)
    if tilt > MAX_TILT:
        return Verdict(similar, False, f"tilted by {tilt:.2f} degrees: another shot")
    if max(cover_a, cover_b) < CONTAINMENT:
        other_shot = agreement >= OTHER_SHOT_AGREEMENT and correlation >= OTHER_SHOT_CORRELATION
        unnested = agreement >= MIN_AGREEMENT and correlation >= MIN_GRADIENT_CORRELATION
        reason = f"neither frame contains the other ({cover_a:.3f}, {cover_b:.3f})"
        return Verdict(similar, False, reason, decided=other_shot, unnested=unnested)
    if agreement < MIN_AGREEMENT or correlation < MIN_GRADIENT_CORRELATION:
        return Verdict(similar, False, f"content disagrees (agreement {agreement:.2f}, correlation {correlation:.2f})")
    if layout < MIN_LAYOUT_CORRELATION:
        return Verdict(similar, False, f"light and dark laid out differently (layout {layout:.2f}): only an overlay agrees")
    if structure.unexplained > MAX_UNEXPLAINED and structure.each_lacks > MIN_EACH_LACKS:
        reason = f"each picture has edges the other lacks, no overlay to explain them ({structure.unexplained:.2f} of the textured cells)"
        return Verdict(similar, False, reason)
    if not keypoints_relate and structure.textured < SMALL_SUBJECT and correlation < MIN_SMALL_SUBJECT_CORRELATION:
        reason = (
            f"small subjects on a plain ground (detail in {structure.textured:.2f} of the frame), no keypoints relate them, "
            f"and their edges correlate only {correlation:.2f}: two subjects"
        )
        return Verdict(similar, False, reason)
    conflicts = compared.colour_conflicts(matrix, structure)
    if conflicts is not None and conflicts > MAX_COLOUR_CONFLICTS:
        reason = f"colours differ place by place (one colour in one picture is two in the other in {conflicts:.2f} of the cells): two pictures"
        return Verdict(similar, False, reason)
    # How visible the difference is: cropped area, disagreeing (overlaid) area, light, colour.
    crop_loss = 1.0 - min(cover_a, cover_b)
    overlay_loss = max(0.0, (1.0 - overall) - OVERLAY_TOLERANCE)
    light_loss = LIGHT_WEIGHT * max(0.0, difference - LIGHT_TOLERANCE)
    colour_loss = comparison.colour_difference(a.colour, b.colour)
    visible = crop_loss + overlay_loss + light_loss + colour_loss
    if visible < IDENTICAL_VISIBLE and tuple(a.size) == tuple(b.size) and relation.orientation == 0 and not relation.mirror:
        return Verdict(1.0, True, "pixel-identical")
    if crop_loss >= CROPPED and overlay_loss > MAX_CROPPED_OVERLAY:
        # A large crop whose content disagrees in places is the signature of another shot
        # (perspective, parallax): the overlapping part of two frames, aligned at best.
        reason = f"a cropped frame whose content disagrees (crop {crop_loss:.2f}, overlay {overlay_loss:.2f})"
        return Verdict(similar, False, reason)
    if guessed and _too_visible_for_a_guess(visible):
        return Verdict(similar, False, f"a guessed frame that differs too much (visible {visible:.2f})")
    if _bent(compared, matrix, structure):
        return Verdict(similar, False, "bent by perspective where an affine map fits only on average: another shot from another place")
    score = max(NEAR_FLOOR, min(MAX_NEAR_SCORE, 1.0 - SCORE_PER_VISIBLE * visible))
    coincide = min(cover_a, cover_b) >= CONTAINMENT
    losses = f"crop {crop_loss:.2f} overlay {overlay_loss:.2f} light {light_loss:.2f} colour {colour_loss:.2f}"
    return Verdict(round(float(score), SCORE_DECIMALS), True, losses, decided=coincide)


def _bent(compared: _Comparisons, matrix: np.ndarray, structure: comparison.Structure) -> bool:
    """Whether a perspective map explains what the affine ``matrix`` leaves misfit (see ``MAX_BEND``)."""
    keep = np.where(structure.marked_pixels(), 0, 255).astype(np.uint8)
    if alignment.affine_misfit(compared.a_view, compared.b_view, matrix, keep) <= MIN_BEND_MISFIT:
        return False
    bent = alignment.bend(compared.a_view, compared.b_view, matrix, keep)
    return bent is not None and bent.misfit > MIN_BEND_MISFIT and bent.departure > MAX_BEND and bent.left < MAX_BEND_LEFT


def _rejected_score(structure: comparison.Structure) -> float:
    """A failed pair's score: how alike it looked, below any verified pair's."""
    return min(REJECTED_SCALE * max(0.0, structure.agreement) * max(0.0, structure.correlation), REJECTED_CEILING)


def _laid_out_differently_score(layout: float) -> float:
    """The score of a pair settled on its layout alone, before any alignment (``MIN_FIRST_LAYOUT``):
    how alike the layouts are, on the scale of ``_rejected_score``, which would need the whole
    comparison (the layout is a third of it). Under the floors it is 0.275 at most, far apart
    to grouping (``groups.KINSHIP``) as the score by agreement and correlation was: at most
    0.484 on the 34,436 such pairs of the library of 16,000 tiles."""
    return min(REJECTED_SCALE * max(0.0, layout), REJECTED_CEILING)


def is_flat(features: Features) -> bool:
    """Too plain to fingerprint: its grey levels span almost nothing."""
    low, high = features.levels
    return float(high - low) < FLAT_SPAN


def _flat_verdict(a: Features, b: Features) -> Verdict:
    """Two pictures with too little detail to fingerprint (a blank page, a plain colour).

    Their fingerprints cannot tell two such pictures apart, so one colour and one level of
    light make them a near pair at the floor, never an exact one: only identical
    fingerprints (thumbnails, colours, levels, size) say the pixels are the same.
    """
    if _same_fingerprints(a, b):
        return Verdict(1.0, True, "flat pictures with identical fingerprints", decided=True)
    same_colour = comparison.colour_difference(a.colour, b.colour) < FLAT_SAME_COLOUR
    same = same_colour and abs(float(a.levels.mean()) - float(b.levels.mean())) < FLAT_SAME_LIGHT
    return Verdict(NEAR_FLOOR if same else 0.0, same, "flat pictures: one colour, too little detail to say more", decided=True)


def _same_fingerprints(a: Features, b: Features) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in ("size", "levels", "thumb", "colour"))
