"""Scoring candidate pairs: a top-level function a worker process runs on a batch.

Most candidates are strangers, and aligning costs far more than looking: so the keypoint fit
(about a millisecond) and the hash distance come first, and a pair with neither a keypoint
relation nor a hash within reach of a whole-frame edit is settled as far apart without any
alignment (``worth_aligning``), and so are two textured pictures no keypoints relate whose
gradients do not correlate where the frames lie (``verdict.MIN_UNMOVED_CORRELATION``). The
others are aligned as before: the candidate proposals say which geometric relations to try
first (a hash match in some orientation suggests the whole frame; keypoint matches suggest a
crop); whichever verifies with the best score wins. A
whole-frame verdict that settles the pair (the frames coincide, they align but each shows
what the other lacks, or only the hash relates them and their layouts disagree before any
alignment) ends the search; so does a keypoint relation showing another shot, which
outweighs a whole-frame alignment; a template search is made only when the keypoints give no
estimate and some frame it could guess might verify. A pair whose best verdict is two frames
that agree but do not nest is scored again from its other picture's side (``score_pair``)."""

from __future__ import annotations

from dataclasses import dataclass

from dupe_scanner.analysis.features import Features, decode
from dupe_scanner.analysis.fingerprints import ORB_FEATURES
from dupe_scanner.analysis.verify import (
    Relation,
    Verdict,
    closest_orientation,
    from_keypoints,
    from_template,
    full_frame,
    guess_may_verify,
    hash_distance,
    is_flat,
    verify,
)

# Bits of 64 between the nearest orientations' hashes beyond which, with no keypoint
# relation either, a pair is not aligned at all. Chosen on the tune split: of 2,399
# verified candidate pairs 5 fail it (2 of them across families), against 34 % of all
# candidates (60 % of those across families) that it settles without an alignment.
EVIDENCE_HASH_DISTANCE = 20
# ...and between two textured pictures (``textured``): the hash's search radius
# (``candidates.HASH_RADIUS``). The bits beyond it are for edits that also defeat the
# keypoints of a smooth picture (a hue turned, a large block of text on an illustration);
# a textured picture's copy keeps keypoints enough for the fit. Of the labelled set's 4,957
# planted pairs, 272 verify with no keypoint relation; none of them is two textured
# pictures more than 12 bits apart (3 are within 12), while 40 % of a real library's
# candidates that are aligned are such pairs. (Not imported from ``candidates``: the
# workers that score pairs need not load faiss.)
TEXTURED_EVIDENCE_HASH_DISTANCE = 12


def score_pair(a: Features, b: Features, orientation: int | None) -> Verdict:
    """The best verdict over the relations worth trying for this pair, cheapest first, from
    A's side; and from B's when that ends with two frames that agree but do not nest.

    The alignment fits B's pixels into A's frame. When A is the crop, B's frame sticks out of
    A's, and the fit can stop short of nesting them: a 5 % crop then reads as another shot
    (two frames each showing what the other lacks). Fitted the other way round, the crop's
    pixels all lie inside its original's frame. A pair is asked from one side (its newer
    picture's), so either may be the crop.

    The keypoint fit, too, can relate the two from one side only: it matches each of B's
    points to its nearest in A, and from a crop's side its original's points outside the crop
    match at random and can swamp the fit. Which side asks is which picture came later (for a
    first scan, which the index happened to finish first), so a pair the fit relates from B's
    side only is scored from B's side.
    """
    keypoints = from_keypoints(a, b)
    both_fitted = keypoints is None
    if both_fitted:
        reverse = from_keypoints(b, a)
        if reverse is not None:
            a, b, orientation, keypoints = b, a, None, reverse
    verdict = _score_with(a, b, orientation, keypoints, b_side_relates=False if keypoints is None else None)
    if verdict.verified or not verdict.unnested:
        return verdict
    # From the other side: where both fits were made, its own found nothing (it is the one
    # that failed, or both did) and the side scored above is related exactly when it was.
    other_side = _score_with(b, a, None, None, b_side_relates=keypoints is not None) if both_fitted else _score_from(b, a, None)
    return other_side if other_side.score > verdict.score else verdict


def _score_from(a: Features, b: Features, orientation: int | None) -> Verdict:
    """``score_pair`` from A's side only."""
    return _score_with(a, b, orientation, from_keypoints(a, b))


def _score_with(a: Features, b: Features, orientation: int | None, keypoints: Relation | None, b_side_relates: bool | None = None) -> Verdict:
    """``_score_from`` with A's keypoint fit made (``keypoints``), and B's if ``b_side_relates`` is given."""
    if orientation is None:
        orientation = closest_orientation(a, b)
    if b_side_relates is None and keypoints is None and textured(a) and textured(b):
        # Fitted once here for both questions below (``worth_aligning``, ``textured_strangers``).
        b_side_relates = from_keypoints(b, a) is not None
    if not worth_aligning(a, b, keypoints, b_side_relates):
        return NO_EVIDENCE
    strangers = textured_strangers(a, b, keypoints, b_side_relates)
    best = verify(a, b, full_frame(a, b, orientation), hash_alone=keypoints is None, textured_strangers=strangers)
    if best.decided or best.score >= 1.0:
        # Nothing visible tells two frames of one size apart: however a repeating pattern's
        # keypoints pair up (one period off, a look-alike's signature below), one picture.
        return best
    relation, guessed = keypoints, False
    if relation is None:
        if best.verified and best.score >= 0.9:
            return best
        # No keypoint estimate (too few matches: smooth skies, illustrations): search one
        # frame inside the other by gradient magnitudes. Not when keypoints did agree on a
        # relation: that is the relation, and a template search would only find some other
        # frame that happens to look alike (another shot's overlap, rescaled). Nor between
        # textured strangers: a crop keeping half of a textured picture (all a template
        # search tries) keeps enough of its points for the keypoint fit. Nor where even the
        # largest frame it could guess would be rejected unaligned (``guess_may_verify``).
        if strangers or not guess_may_verify(a, b, orientation):
            return best
        relation, guessed = from_template(a, b, orientation), True
    if relation is not None:
        verdict = verify(a, b, relation, guessed)
        if verdict.decided and not verdict.verified and not guessed:
            # The keypoints' correspondences show another shot: an alignment of the whole
            # frames that also verified was a look-alike (a repeating pattern, one period off).
            return verdict
        if verdict.score > best.score:
            best = verdict
    return best


# Far apart: compared, and nothing relates the two pictures (see ``worth_aligning``).
NO_EVIDENCE = Verdict(0.0, False, "no evidence of a relation: hashes far apart, no keypoint geometry", decided=True)


def worth_aligning(a: Features, b: Features, keypoints: Relation | None, b_side_relates: bool | None = None) -> bool:
    """Whether anything suggests the two are one picture, before any alignment is paid for.

    Aligning and comparing costs ten to a hundred times the keypoint fit, and most candidates
    in a library are strangers sharing a few commonplace descriptors. A copy shows itself by
    a hash within ``EVIDENCE_HASH_DISTANCE`` bits in some orientation (whole-frame edits), by
    keypoints agreeing on one geometric relation (crops, overlays), or is plain (nothing to
    fingerprint: only the pixels can tell). Textured strangers need a nearer hash
    (``TEXTURED_EVIDENCE_HASH_DISTANCE``).
    """
    if keypoints is not None or is_flat(a) or is_flat(b):
        return True
    distance = hash_distance(a, b)
    if distance > EVIDENCE_HASH_DISTANCE:
        return False
    return distance <= TEXTURED_EVIDENCE_HASH_DISTANCE or not textured_strangers(a, b, keypoints, b_side_relates)


def textured(features: Features) -> bool:
    """Whether the picture filled its keypoint quota (``fingerprints.ORB_FEATURES``): points all over it."""
    return len(features.descriptors) >= ORB_FEATURES


def textured_strangers(a: Features, b: Features, keypoints: Relation | None, b_side_relates: bool | None = None) -> bool:
    """Two textured pictures whose keypoints relate them from neither side.

    The keypoint fit matches each of B's points to its nearest in A, so it can find a relation
    one way and not the other (a large crop, scanned from the crop's side). ``keypoints`` is
    ``score_pair``'s fit of B to A, made already; this asks the other way only when that one
    found nothing, and ``b_side_relates`` did not say already.
    """
    if keypoints is not None or not (textured(a) and textured(b)):
        return False
    if b_side_relates is None:
        b_side_relates = from_keypoints(b, a) is not None
    return not b_side_relates


@dataclass(frozen=True)
class ScoredBatch:
    scores: list[tuple[str, str, float]]  # (first, second, score) of every candidate scored, rejected ones included
    damaged: list[str]  # contents whose stored fingerprints do not decode (cut short by a full disk, say): their candidates are left out


def score_batch(blobs: dict[str, bytes], candidates: list[tuple[str, str, int | None]]) -> ScoredBatch:
    """The score of every candidate (first, second, orientation hint) whose two fingerprints decode.

    The worker finds damaged fingerprints as it decodes them, so the scan's main process
    need not decode every blob it sends once more just to check it.
    """
    cache: dict[str, Features | None] = {}
    damaged: list[str] = []

    def features(key: str) -> Features | None:
        if key not in cache:
            try:
                cache[key] = decode(blobs[key])
            except ValueError:
                cache[key] = None
                damaged.append(key)
        return cache[key]

    scored = []
    for first, second, orientation in candidates:
        a, b = features(first), features(second)
        if a is not None and b is not None:
            scored.append((first, second, score_pair(a, b, orientation).score))
    return ScoredBatch(scored, damaged)
