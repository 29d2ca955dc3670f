"""Scoring candidate pairs: a top-level function a worker process runs on a batch.

The candidate proposals say which geometric relations to try first (a hash match in some
orientation suggests the whole frame; keypoint matches suggest a crop); whichever verifies
with the best score wins.
"""

from __future__ import annotations

from daemon.analysis.features import Features, decode
from daemon.analysis.verify import Verdict, closest_orientation, from_keypoints, from_template, full_frame, verify


def score_pair(a: Features, b: Features, orientation: int | None) -> Verdict:
    """The best verdict over the relations worth trying for this pair, cheapest first."""
    if orientation is None:
        orientation = closest_orientation(a, b)
    best = verify(a, b, full_frame(a, b, orientation))
    if best.verified and best.score >= 0.9:
        return best
    for propose in (lambda: from_keypoints(a, b), lambda: from_template(a, b, orientation)):
        relation = propose()
        if relation is None:
            continue
        verdict = verify(a, b, relation)
        if verdict.score > best.score:
            best = verdict
        if best.verified:
            return best
    return best


def score_batch(blobs: dict[str, bytes], candidates: list[tuple[str, str, int | None]], min_score: float) -> list[tuple[str, str, float]]:
    """Scores of the ``candidates`` (first, second, orientation hint) that reach ``min_score``."""
    cache: dict[str, Features] = {}

    def features(key: str) -> Features:
        if key not in cache:
            cache[key] = decode(blobs[key])
        return cache[key]

    scored = []
    for first, second, orientation in candidates:
        verdict = score_pair(features(first), features(second), orientation)
        if verdict.score >= min_score:
            scored.append((first, second, verdict.score))
    return scored
