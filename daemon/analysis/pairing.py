"""Scoring candidate pairs: a top-level function a worker process runs on a batch.

The candidate proposals say which geometric relations to try first (a hash match in some
orientation suggests the whole frame; keypoint matches suggest a crop); whichever verifies
with the best score wins. A whole-frame verdict that settles the pair (the frames coincide,
or they align but each shows what the other lacks) ends the search; so does a keypoint
relation showing another shot, which outweighs a whole-frame alignment; a template search is
made only when the keypoints give no estimate.
"""

from __future__ import annotations

from daemon.analysis.features import Features, decode
from daemon.analysis.verify import Verdict, closest_orientation, from_keypoints, from_template, full_frame, verify


def score_pair(a: Features, b: Features, orientation: int | None) -> Verdict:
    """The best verdict over the relations worth trying for this pair, cheapest first."""
    if orientation is None:
        orientation = closest_orientation(a, b)
    best = verify(a, b, full_frame(a, b, orientation))
    if best.decided:
        return best
    relation, guessed = from_keypoints(a, b), False
    if relation is None:
        if best.verified and best.score >= 0.9:
            return best
        # No keypoint estimate (too few matches: smooth skies, illustrations): search one
        # frame inside the other by gradient magnitudes. Not when keypoints did agree on a
        # relation: that is the relation, and a template search would only find some other
        # frame that happens to look alike (another shot's overlap, rescaled).
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


def score_batch(blobs: dict[str, bytes], candidates: list[tuple[str, str, int | None]]) -> list[tuple[str, str, float]]:
    """The score of every candidate (first, second, orientation hint), rejected ones included."""
    cache: dict[str, Features] = {}

    def features(key: str) -> Features:
        if key not in cache:
            cache[key] = decode(blobs[key])
        return cache[key]

    scored = []
    for first, second, orientation in candidates:
        verdict = score_pair(features(first), features(second), orientation)
        scored.append((first, second, verdict.score))
    return scored
