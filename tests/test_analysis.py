"""The embedded analyser's pure parts: hashes, the neighbour index, the blob format, verification."""

from __future__ import annotations

import numpy as np
from PIL import Image

from daemon.analysis.features import PREFIX_BYTES, decode, decode_hashes, encode
from daemon.analysis.fingerprints import HASH_SIDE, dct_hash, features_of, orient
from daemon.analysis.neighbours import MultiIndexHash, best_pairs
from daemon.analysis.pairing import score_pair
from tests.test_embedded_backend import photo


def test_multi_index_hashing_finds_exactly_what_brute_force_finds_within_the_guaranteed_radius():
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 3000, dtype=np.uint64)
    queries = stored[:200].copy()
    for row in range(200):  # flip a few random bits of each
        for bit in rng.choice(64, rng.integers(0, 12), replace=False):
            queries[row] ^= np.uint64(1) << np.uint64(bit)
    index = MultiIndexHash(stored, chunk_radius=2)
    found = index.search(queries[:, None], radius=index.guaranteed_radius)
    got = set(zip(found.query.tolist(), found.stored.tolist()))
    distances = np.bitwise_count(queries[:, None] ^ stored[None, :])
    expected = set(zip(*np.nonzero(distances <= index.guaranteed_radius)))
    assert got == {(int(q), int(s)) for q, s in expected}
    assert all(d <= index.guaranteed_radius for d in found.distance)


def test_best_pairs_keeps_one_spelling_per_pair_and_the_closest_orientation():
    first, second, orientation, distance = best_pairs(
        np.array([0, 1, 0, 2]), np.array([1, 0, 1, 2]), np.array([3, 5, 0, 1]), np.array([4, 2, 6, 0])
    )
    assert list(zip(first, second, orientation, distance)) == [(1, 0, 5, 2)]


def test_the_hash_of_a_turned_picture_is_the_turned_hash():
    grey = np.asarray(photo(3).convert("L").resize((HASH_SIDE, HASH_SIDE)), dtype=np.float64)
    turned = np.rot90(grey, 1)
    assert dct_hash(turned) == dct_hash(orient(grey, 1))


def test_features_survive_the_blob_and_the_prefix_holds_the_hashes():
    image = photo(5)
    features = features_of(image, image.size)
    blob = encode(features)
    again = decode(blob)
    assert np.array_equal(again.hashes, features.hashes)
    assert np.array_equal(again.thumb, features.thumb)
    assert np.array_equal(again.descriptors, features.descriptors)
    assert tuple(again.size) == image.size
    assert np.array_equal(decode_hashes(blob[:PREFIX_BYTES]), features.hashes)


def _features(image: Image.Image):
    return decode(encode(features_of(image, image.size)))


def test_a_crop_is_a_duplicate_but_a_panned_frame_is_not():
    scene = photo(21, (900, 500))
    original = scene.crop((0, 0, 700, 500))
    crop = original.crop((120, 60, 640, 470))  # about 40 % of the area cut away
    panned = scene.crop((150, 0, 850, 500))  # shows 150 px the original does not
    a = _features(original)
    assert score_pair(a, _features(crop), None).verified
    verdict = score_pair(a, _features(panned), None)
    assert not verdict.verified and verdict.score < 0.6


def test_a_sheared_view_is_not_a_duplicate():
    original = photo(22)
    sheared = original.transform(original.size, Image.Transform.AFFINE, (1, 0.08, -20, 0, 1, 0), Image.Resampling.BICUBIC)
    assert score_pair(_features(original), _features(sheared), None).score < 0.6
