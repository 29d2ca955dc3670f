"""bench/scale's pure helpers: tiles that never overlap, findimagedupes' output, bit flips."""

from __future__ import annotations

import random

import numpy as np

from bench.scale import group_pairs
from bench.scale_library import TILE_SIDES, split_boxes
from bench.scale_simulate import flip_bits, flip_descriptor_bits


def test_tiles_cover_the_photograph_without_overlap_within_the_side_range():
    boxes = split_boxes((0, 0, 3840, 2160), random.Random(7))
    covered = np.zeros((2160, 3840), np.uint8)
    for left, top, right, bottom in boxes:
        assert TILE_SIDES[0] <= right - left <= TILE_SIDES[1]
        assert TILE_SIDES[0] <= bottom - top <= TILE_SIDES[1]
        covered[top:bottom, left:right] += 1
    assert covered.max() == 1  # no pixel in two tiles
    assert len(boxes) >= 24  # a 4K wallpaper gives dozens of pictures


def test_a_photograph_smaller_than_a_tile_gives_none():
    assert split_boxes((0, 0, 100, 900), random.Random(1)) == []


def test_each_findimagedupes_line_is_a_group_of_pairs():
    output = "/x/a.jpg /x/b.jpg /x/c.jpg\n/y/d.png /y/e.png\n"
    assert sorted(group_pairs(output)) == [("a.jpg", "b.jpg"), ("a.jpg", "c.jpg"), ("b.jpg", "c.jpg"), ("d.png", "e.png")]


def test_bit_flips_change_exactly_the_asked_number_of_bits():
    rng = np.random.default_rng(3)
    words = np.array([0, 2**63, 12345], dtype=np.uint64)
    flipped = flip_bits(words, np.array([5, 0, 17]), rng)
    assert [bin(int(a ^ b)).count("1") for a, b in zip(words, flipped, strict=True)] == [5, 0, 17]


def test_descriptor_flips_stay_within_the_bound():
    rng = np.random.default_rng(4)
    descriptors = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    flipped = flip_descriptor_bits(descriptors, 4, rng)
    distances = np.unpackbits(descriptors ^ flipped, axis=1).sum(axis=1)
    assert flipped.shape == descriptors.shape and distances.max() <= 4
