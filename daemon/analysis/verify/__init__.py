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
  dark in place, so it must correlate (``MIN_LAYOUT_CORRELATION``); where only the hash
  relates two pictures, already at the whole-frame estimate, before any alignment
  (``MIN_FIRST_LAYOUT``; more strictly for frames of other shapes, which only a crop can
  relate: ``MIN_FIRST_LAYOUT_OTHER_SHAPES``).
- An edit moves no edge: outside an overlay, what one picture shows the other shows too,
  and what it adds or takes away (text, noise, blur) is in one picture only. Two different
  subjects on one plain ground (nebulae on a black sky) agree on the ground and around the
  centre, yet most of their textured cells hold edges the other lacks, in both pictures
  (``MAX_UNEXPLAINED``, ``MIN_EACH_LACKS``). Where the subjects are small (detail in under a
  third of the frame's cells) a round blob agrees cell by cell with any other, and no
  keypoints tie them, the edges must also correlate pixel by pixel (``SMALL_SUBJECT``,
  ``MIN_SMALL_SUBJECT_CORRELATION``).
- An edit that defeats a textured picture's keypoints (heavy noise or blur, a turned colour)
  moves no edge: two textured pictures of one shape that no keypoints relate must have
  gradients that correlate where the frames already lie (``MIN_UNMOVED_CORRELATION``), or
  they are not aligned at all.
- An edit changes every pixel of one colour alike (light, contrast, saturation, a tint, a
  turn of hue, greyscale): where one picture has one colour, the other has one colour too,
  in one direction at least. Two tiles of one pattern whose blocks are coloured or lit
  otherwise place by place align edge on edge, but one colour in one is two in the other
  (``MAX_COLOUR_CONFLICTS``, measured on the colour thumbnails, text on either aside).
- A flat scene seen from another place (a screen, a wall, a wallpaper shot from the side) is
  bent by perspective: where a smooth part hides it from the frame's checks, the affine
  alignment fits it only on average, and a perspective map fitted from it explains most of
  what it leaves (``MAX_BEND``, ``MAX_BEND_LEFT``, ``MIN_BEND_MISFIT``). An edit bends nothing:
  what it leaves is light, noise, colour or text, which no map explains.
- Telling them apart: when the frames align well (``OTHER_SHOT_AGREEMENT``) yet neither
  contains the other, that settles it (no other relation is searched for, which would only
  find some rescaled overlap that happens to look alike); a frame cut by ``CROPPED`` or
  more must agree nearly everywhere (``MAX_CROPPED_OVERLAY``: parallax and perspective
  leave the overlap of two shots disagreeing in places); and a relation found by template
  search alone, with no hash or keypoint support, must not need the score floor.

The score is on Flow's scale: 1.0 pixel-identical; 0.9 and up no visible change (size,
format, recompression); down to 0.6 as crops, overlays and photometric edits grow; a pair
that fails verification scores below 0.6.

The parts, each readable alone, imported one way (``verdict`` uses the other three):

- ``relation``: the geometric relations worth trying, and where they come from (hash,
  keypoints, template search).
- ``alignment``: refining a relation by ECC, and its geometry (shape error, tilt, coverage).
- ``comparison``: how alike the aligned pictures are (gradients, overlays, layout, colour).
- ``verdict``: the rule above applied to one relation, and the score.
"""

from __future__ import annotations

from dupe_scanner.analysis.verify.alignment import MAX_SHAPE_ERROR
from dupe_scanner.analysis.verify.comparison import CELL_AGREES, LAYOUT_BLUR, OVERLAY_ENERGY, OVERLAY_REST_DIFFERENCE, Structure
from dupe_scanner.analysis.verify.relation import (
    MAX_KEYPOINT_SCALE,
    MIN_INLIERS,
    Relation,
    closest_orientation,
    from_keypoints,
    from_template,
    full_frame,
    hash_distance,
    views,
)
from dupe_scanner.analysis.verify.verdict import (
    CONTAINMENT,
    CROPPED,
    GUESS_CUT_SLACK,
    MAX_ALIGNED_STRETCH,
    MAX_BEND,
    MAX_BEND_LEFT,
    MAX_COLOUR_CONFLICTS,
    MAX_CROPPED_OVERLAY,
    MAX_TILT,
    MAX_UNEXPLAINED,
    MIN_AGREEMENT,
    MIN_BEND_MISFIT,
    MIN_EACH_LACKS,
    MIN_FIRST_LAYOUT,
    MIN_FIRST_LAYOUT_OTHER_SHAPES,
    MIN_GRADIENT_CORRELATION,
    MIN_LAYOUT_CORRELATION,
    MIN_SMALL_SUBJECT_CORRELATION,
    MIN_UNMOVED_CORRELATION,
    NEAR_FLOOR,
    ONE_SHAPE,
    OTHER_SHOT_AGREEMENT,
    OTHER_SHOT_CORRELATION,
    SMALL_SUBJECT,
    Verdict,
    guess_may_verify,
    is_flat,
    verify,
)

# Bump when scores change (a new check, a moved limit, in any module here or in pairing.py):
# stored pairs are then scored again. What it means and when to bump it, beside ANALYSER and
# MAGIC: daemon/analysis/__init__.py.
VERIFIER = "verify-23"  # 23: an overlay left out of the realignment is masked where it lies in A, the picture ECC warps (alignment.refine)
# 22: two textured strangers of one shape whose gradients do not correlate unaligned are not aligned (MIN_UNMOVED_CORRELATION)
# 21: a pair a perspective map explains, where the affine one fits only on average, is another shot (MAX_BEND)
# (20 was fewer ECC passes, landed in 098c5c8 and taken back out: a state may carry its name)
# 19: a pair the keypoint fit relates from one side only is scored from that side (pairing.score_pair)
# (not bumped for alignment.turned_beyond_reach: no verdict changed among 27,653 stored pairs
# scored again; 20 rejected pairs' scores moved, all below 0.5, and stored pairs may keep theirs)
# 18: the same colour in one picture, the same colour in the other (MAX_COLOUR_CONFLICTS)
# 17: small subjects on a plain ground, no keypoints: their edges must correlate (SMALL_SUBJECT)
# 16: an affine fit far from a similarity at half size is not refined at full size
# (not bumped for MAX_ALIGNED_STRETCH and GUESS_CUT_SLACK: no verdict changed among 35,000 pairs
# scored again; some rejected pairs' scores did, and stored pairs may keep theirs; nor for
# ``guess_may_verify``, which skips only template searches whose every guess would be rejected)
# 15: ...nor when its frames are of other shapes and their layouts agree less than 0.55
# 14: a pair only the hash relates is not aligned when its layouts disagree at first sight
# 13: frames that agree but do not nest are aligned again from the other side
# 12: two textured pictures need keypoints or a near hash; no Euclidean refit of a stretch
# 11: edges one picture lacks, no overlay to explain them, reject (MAX_UNEXPLAINED); a weak template match is no relation
# 10: two frames of one size aligned as they are cover each other whole; nothing visible apart wins over keypoints
# (9 was a trial, reverted: no template search beyond 12 bits of hash)

# The earlier verifiers this one only tightens: every pair it verifies, they verified, and
# every pair they rejected it rejects with the same score (a new check that only rejects).
# After an upgrade from one of them, a scan scores again only the stored pairs they verified
# (``scanning.rejudge_verified``), not every candidate of every picture: the time that takes
# follows the duplicates, not the library. Empty it at a bump that may verify a pair they
# rejected, or move a rejected pair's score.
# verify-22 settles unaligned some pairs verify-21 rejected after an alignment, with a score of
# its own: under 0.15, where theirs was under groups.KINSHIP too (at most 0.28 among the camera
# library's 556, 0.498 among the labelled report split's 4), so grouping reads them as far apart
# either way, as the stored pairs of verify-21 say.
TIGHTENS: tuple[str, ...] = ("verify-21", "verify-19")  # (verify-19 verifies crops verify-18 rejected)

__all__ = [
    "CELL_AGREES",
    "CONTAINMENT",
    "CROPPED",
    "GUESS_CUT_SLACK",
    "LAYOUT_BLUR",
    "MAX_ALIGNED_STRETCH",
    "MAX_BEND",
    "MAX_BEND_LEFT",
    "MAX_COLOUR_CONFLICTS",
    "MAX_CROPPED_OVERLAY",
    "MAX_KEYPOINT_SCALE",
    "MAX_SHAPE_ERROR",
    "MAX_TILT",
    "MAX_UNEXPLAINED",
    "MIN_AGREEMENT",
    "MIN_BEND_MISFIT",
    "MIN_EACH_LACKS",
    "MIN_FIRST_LAYOUT",
    "MIN_FIRST_LAYOUT_OTHER_SHAPES",
    "MIN_GRADIENT_CORRELATION",
    "MIN_INLIERS",
    "MIN_LAYOUT_CORRELATION",
    "MIN_SMALL_SUBJECT_CORRELATION",
    "MIN_UNMOVED_CORRELATION",
    "NEAR_FLOOR",
    "ONE_SHAPE",
    "OTHER_SHOT_AGREEMENT",
    "OTHER_SHOT_CORRELATION",
    "OVERLAY_ENERGY",
    "OVERLAY_REST_DIFFERENCE",
    "SMALL_SUBJECT",
    "TIGHTENS",
    "VERIFIER",
    "Relation",
    "Structure",
    "Verdict",
    "closest_orientation",
    "from_keypoints",
    "from_template",
    "full_frame",
    "guess_may_verify",
    "hash_distance",
    "is_flat",
    "verify",
    "views",
]
