"""bench.keypoint_blocks: the asking of keypoint candidates replayed on stored verdicts."""

from __future__ import annotations

import numpy as np

from bench.keypoint_blocks import asked_rows
from dupe_scanner.analysis.candidates import WaitingCandidates


def one_query_with_six_keypoint_candidates_and_three_far_neighbours(keypoint_block: int) -> tuple[WaitingCandidates, list[str]]:
    """Row 9 asks rows 0 to 5 by keypoints (row 0 the most votes) and rows 6 to 8 by hash, 5 to 7 bits away."""
    hashed = np.array([[9, stored, 0, stored - 1] for stored in (6, 7, 8)], dtype=np.int64)
    ranked = np.array([[9, stored, stored] for stored in range(6)], dtype=np.int64)
    waiting = WaitingCandidates.of(hashed, 10, np.arange(10), near_bits=4, block=1, ranked=ranked, keypoint_block=keypoint_block)
    return waiting, [f"k{row}" for row in range(10)]


def asked(waiting: WaitingCandidates, keys: list[str], verified: set[tuple[str, str]]) -> set[int]:
    return {int(stored) for stored in waiting.rows[asked_rows(waiting, keys, verified), 1]}


def test_a_keypoint_block_holding_a_verified_pair_earns_the_next_block_of_either_kind():
    waiting, keys = one_query_with_six_keypoint_candidates_and_three_far_neighbours(keypoint_block=2)

    assert asked(waiting, keys, set()) == {0, 1, 6}  # block 0: two keypoint candidates, one far neighbour
    assert asked(waiting, keys, {("k1", "k9")}) == {0, 1, 6, 2, 3, 7}  # block 1 earned; it held nothing
    assert asked(waiting, keys, {("k1", "k9"), ("k7", "k9")}) == {0, 1, 6, 2, 3, 7, 4, 5, 8}


def test_a_far_neighbour_that_verifies_earns_the_next_keypoint_block():
    waiting, keys = one_query_with_six_keypoint_candidates_and_three_far_neighbours(keypoint_block=2)

    assert asked(waiting, keys, {("k6", "k9")}) == {0, 1, 6, 2, 3, 7}
