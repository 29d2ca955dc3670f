"""Twins: a picture with no visible change from an older one takes that one's verdicts."""

from __future__ import annotations

import numpy as np

from dupe_scanner.analysis.twins import TWIN_SCORE, UNSURE, TwinVerdicts
from dupe_scanner.values import ScoredPair

KEYS = ["original", "stranger", "resized", "recompressed", "crop"]
ORIGINAL, STRANGER, RESIZED, RECOMPRESSED, CROP = range(5)
AGE = np.arange(len(KEYS))  # in the order of KEYS: each row came after the rows before it


def rows(*pairs: tuple[int, int]) -> np.ndarray:
    """Candidate rows (query, stored, no orientation); the query is the newer picture."""
    return np.array([(query, stored, -1) for query, stored in pairs], dtype=np.int64).reshape(-1, 3)


def keyed(pairs: list[tuple[int, int, int, int]]) -> set[tuple[str, str]]:
    return {(KEYS[query], KEYS[stored]) for query, stored, *_ in pairs}


def pairs_of(left: np.ndarray) -> list[tuple[int, int]]:
    return [(query, stored) for query, stored, _ in left.tolist()]


def twins_after_first_round(twin_scores: dict[tuple[int, int], float]) -> TwinVerdicts:
    twins = TwinVerdicts(KEYS, AGE, rows(*twin_scores))
    for (query, stored), score in twin_scores.items():
        twins.learn(ScoredPair.of(KEYS[query], KEYS[stored], score))
    return twins


def test_a_picture_verified_as_its_twin_takes_the_twins_verdict_on_a_picture_both_were_asked():
    twins = twins_after_first_round({(RESIZED, ORIGINAL): TWIN_SCORE})
    to_verify, taken = twins.split(rows((RESIZED, ORIGINAL), (STRANGER, ORIGINAL), (CROP, ORIGINAL), (CROP, RESIZED), (RESIZED, STRANGER)))
    assert [tuple(row) for row in to_verify[:, :2].tolist()] == [(STRANGER, ORIGINAL), (CROP, ORIGINAL), (CROP, RESIZED)]
    assert keyed(taken) == {("resized", "stranger")}  # the original was asked the stranger; the twin pair is not asked again
    twins.learn(ScoredPair.of("original", "stranger", 0.12))
    verdicts, left = twins.resolve(taken)
    assert verdicts == [ScoredPair.of("resized", "stranger", 0.12)] and not len(left)


def test_a_picture_whose_nearest_older_one_scores_below_the_twin_score_is_verified_itself():
    twins = twins_after_first_round({(RESIZED, ORIGINAL): TWIN_SCORE - 0.01})
    to_verify, taken = twins.split(rows((STRANGER, ORIGINAL), (RESIZED, STRANGER)))
    assert len(to_verify) == 2 and taken == []


def test_a_pair_the_twin_was_not_asked_is_verified():
    twins = twins_after_first_round({(RESIZED, ORIGINAL): 0.97})
    to_verify, taken = twins.split(rows((RESIZED, STRANGER)))  # the original was never asked the stranger
    assert len(to_verify) == 1 and taken == []


def test_a_twin_of_a_twin_takes_the_verdict_its_twin_took():
    twins = twins_after_first_round({(RESIZED, ORIGINAL): 0.97, (RECOMPRESSED, RESIZED): 0.99})
    _, taken = twins.split(rows((STRANGER, ORIGINAL), (RESIZED, STRANGER), (RECOMPRESSED, STRANGER)))
    assert keyed(taken) == {("resized", "stranger"), ("recompressed", "stranger")}
    twins.learn(ScoredPair.of("original", "stranger", 0.2))
    verdicts, _ = twins.resolve(taken)
    assert [scored.score for scored in verdicts] == [0.2, 0.2]


def test_a_pair_whose_twins_verdict_never_came_is_given_back_to_verify():
    twins = twins_after_first_round({(RESIZED, ORIGINAL): 0.97})
    _, taken = twins.split(rows((STRANGER, ORIGINAL), (RESIZED, STRANGER)))
    # No verdict on (original, stranger): the stranger's fingerprint was found damaged.
    verdicts, left = twins.resolve(taken)
    assert verdicts == [] and pairs_of(left) == [(RESIZED, STRANGER)]


def test_a_twins_verdict_near_the_line_is_not_taken_but_the_pair_verified_itself():
    low, high = UNSURE
    for score, taken_as in ((low - 0.01, low - 0.01), (low, None), (0.61, None), (high - 0.01, None), (high, high)):
        twins = twins_after_first_round({(RESIZED, ORIGINAL): 0.97})
        _, taken = twins.split(rows((STRANGER, ORIGINAL), (RESIZED, STRANGER)))
        twins.learn(ScoredPair.of("original", "stranger", score))
        verdicts, left = twins.resolve(taken)
        assert [scored.score for scored in verdicts] == ([] if taken_as is None else [taken_as])
        assert pairs_of(left) == ([(RESIZED, STRANGER)] if taken_as is None else [])


def test_a_pair_asked_in_an_earlier_round_counts_for_a_later_one():
    twins = twins_after_first_round({(RESIZED, ORIGINAL): 0.97})
    twins.split(rows((STRANGER, ORIGINAL)))
    twins.learn(ScoredPair.of("original", "stranger", 0.7))
    _, taken = twins.split(rows((RESIZED, STRANGER)))
    verdicts, left = twins.resolve(taken)
    assert verdicts == [ScoredPair.of("resized", "stranger", 0.7)] and not len(left)


def test_a_twin_takes_the_verdict_the_state_holds_for_its_twin_from_an_earlier_part_or_scan():
    asked: list[set[tuple[str, str]]] = []

    def settled(pairs):
        asked.append(set(pairs))
        return [ScoredPair.of("original", "stranger", 0.12)]

    twins = TwinVerdicts(KEYS, AGE, rows((RESIZED, ORIGINAL)), settled)
    twins.learn(ScoredPair.of("original", "resized", 0.97))
    to_verify, taken = twins.split(rows((RESIZED, STRANGER), (RECOMPRESSED, STRANGER)))
    assert asked == [{("original", "stranger")}]  # the pairs of this round's queries' twins, read once
    assert keyed(taken) == {("resized", "stranger")} and pairs_of(to_verify) == [(RECOMPRESSED, STRANGER)]  # no twin: verified
    verdicts, left = twins.resolve(taken)
    assert verdicts == [ScoredPair.of("resized", "stranger", 0.12)] and not len(left)


def test_a_verdict_the_state_holds_near_the_line_is_not_taken_either():
    twins = TwinVerdicts(KEYS, AGE, rows((RESIZED, ORIGINAL)), lambda pairs: [ScoredPair.of("original", "stranger", 0.61)])
    twins.learn(ScoredPair.of("original", "resized", 0.97))
    _, taken = twins.split(rows((RESIZED, STRANGER)))
    verdicts, left = twins.resolve(taken)
    assert verdicts == [] and pairs_of(left) == [(RESIZED, STRANGER)]
