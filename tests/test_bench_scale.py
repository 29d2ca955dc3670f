"""bench/scale's helpers: tiles that never overlap, findimagedupes' output, bit flips, repeating patterns, the scan against the index."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from PIL import Image

from bench.dataset import Seed
from bench.scale import group_pairs, scan_against_index
from bench.scale_library import CAMERA_GRAIN, CAMERA_SIDE, TILE_SIDES, camera_sized, split_boxes
from bench.scale_repeats import RepeatCheck
from bench.scale_simulate import Real, candidates_asked, distinct_features, flip_bits, flip_descriptor_bits
from dupe_scanner.analysis.fingerprints import features_of
from tests.test_embedded_backend import photo


@pytest.mark.parametrize("pool", sorted(TILE_SIDES))
def test_tiles_cover_the_photograph_without_overlap_within_the_side_range(pool):
    low, high = TILE_SIDES[pool]
    boxes = split_boxes((0, 0, 3840, 2160), (low, high), random.Random(7))
    covered = np.zeros((2160, 3840), np.uint8)
    for left, top, right, bottom in boxes:
        assert low <= right - left <= high
        assert low <= bottom - top <= high
        covered[top:bottom, left:right] += 1
    assert covered.max() == 1  # no pixel in two tiles
    assert len(boxes) >= 24  # a 4K wallpaper gives dozens of pictures


def test_smaller_tiles_give_more_pictures_of_the_same_photograph():
    sizes = {pool: len(split_boxes((0, 0, 3840, 2160), TILE_SIDES[pool], random.Random(7))) for pool in ("pool-v1", "pool-v2")}
    assert sizes["pool-v2"] >= 3 * sizes["pool-v1"]


def test_a_photograph_smaller_than_a_tile_gives_none():
    assert split_boxes((0, 0, 100, 900), TILE_SIDES["pool-v2"], random.Random(1)) == []


def test_a_camera_pool_tile_is_written_at_a_cameras_size_with_the_same_grain_each_time():
    gradient = np.tile(np.linspace(0, 255, 600, dtype=np.float32), (460, 1))
    tile = Image.fromarray(np.dstack([gradient] * 3).astype(np.uint8))
    first, again, other = camera_sized(tile, "seed@0,0,600,460"), camera_sized(tile, "seed@0,0,600,460"), camera_sized(tile, "seed@600,0,1200,460")
    assert first.size == (CAMERA_SIDE, round(460 * CAMERA_SIDE / 600))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    middle = np.asarray(first, dtype=np.float32)[1000:1200, 1000:1200, 0]
    rows_apart = middle - np.asarray(tile.resize(first.size, Image.Resampling.BICUBIC), dtype=np.float32)[1000:1200, 1000:1200, 0]
    assert abs(float(rows_apart.std()) - CAMERA_GRAIN) < 0.5  # grain of the stated strength, nothing else changed
    assert abs(float(rows_apart.mean())) < 0.2


def test_the_scan_is_read_against_the_index_on_cpu_where_the_tool_has_an_index():
    assert scan_against_index({"index_cpu_s": 40.0, "scan_cpu_s": 10.0}) == "0.25"
    assert scan_against_index({"scan_cpu_s": 10.0}) == "-"  # a peer, or a run saved before the column
    assert scan_against_index({"index_cpu_s": 0.0, "scan_cpu_s": 10.0}) == "-"


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


@pytest.fixture
def _photograph_check(tmp_path):
    def check_on(pixels: np.ndarray) -> RepeatCheck:
        path = tmp_path / "wallpaper.png"
        Image.fromarray(pixels).save(path)
        return RepeatCheck([Seed("wallpaper", "test", path)])

    return check_on


def test_two_tiles_of_a_mirrored_pattern_show_the_same_pixels(_photograph_check):
    noise = np.random.default_rng(5).integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    motif = cv2.GaussianBlur(noise, (0, 0), 3)  # a painting's strokes, not noise
    wallpaper = np.concatenate([motif, motif[:, ::-1]], axis=1)  # the motif, then its mirror image
    check = _photograph_check(wallpaper)
    assert check.same_pixels("wallpaper@20,20,260,180", "wallpaper@340,20,580,180")


def test_two_tiles_of_a_photograph_that_does_not_repeat_are_different(_photograph_check):
    scene = cv2.GaussianBlur(np.random.default_rng(6).integers(0, 256, size=(200, 600, 3), dtype=np.uint8), (0, 0), 3)
    check = _photograph_check(scene)
    assert not check.same_pixels("wallpaper@20,20,260,180", "wallpaper@340,20,580,180")


def test_smooth_gradients_of_other_colours_are_not_the_same_pixels(_photograph_check):
    # Correlation alone matches any two gradients of one hue; the light must be the same too.
    ramp = np.linspace(0, 1, 600, dtype=np.float32)[None, :, None]
    colour = np.where(np.arange(600)[None, :, None] < 300, [40, 80, 160], [80, 160, 255]).astype(np.float32)
    gradient = np.repeat((colour * (0.5 + 0.5 * ramp)).astype(np.uint8), 200, axis=0)
    check = _photograph_check(gradient)
    assert not check.same_pixels("wallpaper@20,20,260,180", "wallpaper@340,20,580,180")


def test_a_scan_in_parts_asks_the_candidates_of_every_part():
    debug_log = "\n".join([
        "08:47:38 DEBUG 12797 candidate pairs among 100000 contents, 4014 held back until earned",
        "08:48:41 DEBUG 317 of 12591 candidate pairs took their verdict from a twin",
        "08:49:09 DEBUG 14296 candidate pairs among 100000 contents, 3283 held back until earned",
        "08:50:44 DEBUG 2 of 11 candidate pairs took their verdict from a twin",
    ])

    assert candidates_asked(debug_log) == 12797 + 14296
    assert candidates_asked("08:45:56 DEBUG scan stage: comparing images") is None


def test_a_distinct_content_has_the_points_asked_for_else_its_shape_donors_count():
    pictures = [photo(seed) for seed in range(8)]
    features = [features_of(picture, picture.size) for picture in pictures]
    infos = [(*picture.size, "JPEG") for picture in pictures]
    keys = [str(seed) for seed in range(8)]

    asked = distinct_features(Real(keys, features, infos, points=60), np.random.default_rng(1))
    as_shaped = distinct_features(Real(keys, features, infos), np.random.default_rng(1))

    assert len(asked.descriptors) == len(asked.keypoints) == 60
    assert len(asked.mirror_descriptors) == 60
    assert len(as_shaped.descriptors) in {len(f.descriptors) for f in features}
