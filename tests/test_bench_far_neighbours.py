"""bench.far_neighbours: the asking of far hash neighbours replayed on stored verdicts."""

from __future__ import annotations

import numpy as np

from bench.far_neighbours import held_back


def one_query_with_ten_far_neighbours() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row 10 asks rows 0 to 9, which lie 5 to 14 bits from it, row 0 the nearest."""
    hashed = np.array([[10, stored, 0, 5 + stored] for stored in range(10)], dtype=np.int64)
    return hashed, np.arange(11), [f"k{row:02d}" for row in range(11)]


def test_a_block_holding_a_verified_pair_earns_the_next_and_one_holding_none_ends_the_asking():
    hashed, age, keys = one_query_with_ten_far_neighbours()
    verified = {("k01", "k10")}  # in the first block (rows 0 to 2): the second (3 to 5) is asked, and holds none

    assert held_back(hashed, age, keys, verified, near=4, block=3) == [(f"k{row:02d}", "k10") for row in (6, 7, 8, 9)]


def test_pairs_within_the_near_bits_are_always_asked():
    hashed, age, keys = one_query_with_ten_far_neighbours()

    assert held_back(hashed, age, keys, set(), near=10, block=3) == [(f"k{row:02d}", "k10") for row in (9,)]
