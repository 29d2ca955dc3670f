"""The embedded analyser's pure parts: hashes, the neighbour index, the blob format, verification."""

from __future__ import annotations

import dataclasses
import io
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from dupe_scanner.analysis.candidates import (
    CROWD_NEIGHBOURS,
    CROWDED,
    HASH_NEIGHBOURS,
    HASH_RADIUS,
    NEAR_BITS,
    hash_candidates,
    hash_search,
)
from dupe_scanner.analysis.cell_order import merge_nearest
from dupe_scanner.analysis.features import PREFIX_BYTES, decode, decode_hashes, encode
from dupe_scanner.analysis.fingerprints import GRID, HASH_SIDE, ORB_FEATURES, dct_hash, features_of, orient, spread_strongest
from dupe_scanner.analysis.neighbours import MultiIndexHash, best_pairs, reachable
from dupe_scanner.analysis.pairing import EVIDENCE_HASH_DISTANCE, _score_from, score_batch, score_pair
from dupe_scanner.analysis.verify import MAX_BEND, MAX_BEND_LEFT, MIN_BEND_MISFIT, alignment, from_template, full_frame
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
    got = set(zip(found.query.tolist(), found.stored.tolist(), strict=True))
    distances = np.bitwise_count(queries[:, None] ^ stored[None, :])
    expected = set(zip(*np.nonzero(distances <= index.guaranteed_radius), strict=True))
    assert got == {(int(q), int(s)) for q, s in expected}
    assert all(d <= index.guaranteed_radius for d in found.distance)


def test_merged_searches_keep_the_nearest_points_and_the_first_searchs_at_equal_distances():
    nothing = np.iinfo(np.int32).max
    base = (np.array([[1, 4, 9], [2, 3, 5], [0, 0, 7]], np.int32), np.array([[10, 11, 12], [20, 21, 22], [30, 31, 32]]))
    delta = (np.array([[3, 9, nothing], [5, nothing, nothing], [nothing] * 3], np.int32), np.array([[13, 14, -1], [23, -1, -1], [-1] * 3]))

    distances, rows = merge_nearest([base, delta], 3)

    assert distances.tolist() == [[1, 3, 4], [2, 3, 5], [0, 0, 7]]
    assert rows.tolist() == [[10, 13, 11], [20, 21, 22], [30, 31, 32]]  # 5 from the base before 5 from the delta


def test_nearest_keeps_the_nearest_then_oldest_and_only_a_few_in_a_crowd():
    rng = np.random.default_rng(3)
    for trial in range(12):
        n = int(rng.integers(50, 300))
        stored = rng.integers(0, 2**63, 4, dtype=np.uint64)[rng.integers(0, 4, n)]
        for row in range(n):  # crowds around four hashes, each picture a few bits off
            for bit in rng.choice(64, int(rng.integers(0, 5)), replace=False):
                stored[row] ^= np.uint64(1) << np.uint64(int(bit))
        queries = np.stack([stored, stored ^ np.uint64(12345)], axis=1)
        age = rng.permutation(n) if trial % 2 else None
        limit, crowd, alike, crowded = int(rng.integers(2, 60)), int(rng.integers(1, 4)), int(rng.integers(0, 4)), int(rng.integers(5, 40))
        index = MultiIndexHash(stored)
        got = index.nearest(queries, np.arange(n), 12, limit, age, crowd, alike, crowded, batch=int(rng.integers(7, 100)))

        rank = np.arange(n) if age is None else age
        closest: dict[tuple[int, int], tuple[int, int]] = {}
        everything = index.search(queries, 12)
        columns = (everything.query, everything.stored, everything.orientation, everything.distance)
        for query, entry, orientation, distance in zip(*(a.tolist() for a in columns), strict=True):
            if entry != query and (age is None or rank[entry] < rank[query]):
                closest[query, entry] = min(closest.get((query, entry), (99, 0)), (distance, orientation))
        expected = []
        for query in range(n):
            mine = sorted((max(d, alike), rank[entry], entry, o, d) for (q, entry), (d, o) in closest.items() if q == query)
            alike_ones = sum(d <= alike for *_, d in mine)
            expected += [(query, entry, o, d) for _, _, entry, o, d in mine[: crowd if alike_ones > crowded else limit]]
        assert list(zip(*(a.tolist() for a in (got.query, got.stored, got.orientation, got.distance)), strict=True)) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_hash_index_tables_are_those_of_sorting_each_value_and_each_chunk_on_its_own(seed):
    from dupe_scanner.analysis.neighbours import CHUNK_BITS, CHUNKS

    rng = np.random.default_rng(seed)
    distinct = rng.integers(0, 2**64, 300, dtype=np.uint64)
    stored = distinct[rng.integers(0, 300, 2000)]  # copies: values held by several entries
    stored[:50] &= np.uint64(0xFFFF)  # chunks that are zero in many values

    index = MultiIndexHash(stored)

    values, value_of = np.unique(stored, return_inverse=True)
    assert np.array_equal(index.values, values) and np.array_equal(index.value_of, value_of.reshape(-1))
    by_value = np.argsort(value_of.reshape(-1), kind="stable")
    assert np.array_equal(index.by_value, by_value)
    assert np.array_equal(index.value_start, np.searchsorted(value_of.reshape(-1)[by_value], np.arange(len(values) + 1)))
    for chunk, (starts, order) in enumerate(index.tables):
        keys = (values >> np.uint64(chunk * CHUNK_BITS)) & np.uint64((1 << CHUNK_BITS) - 1)
        assert np.array_equal(order, np.argsort(keys, kind="stable"))
        assert np.array_equal(starts, np.searchsorted(keys[order], np.arange((1 << CHUNK_BITS) + 1, dtype=np.uint64)))
    assert len(index.tables) == CHUNKS


def test_an_empty_hash_index_finds_nothing():
    index = MultiIndexHash(np.zeros(0, dtype=np.uint64))

    assert len(index.search(np.zeros((3, 8), dtype=np.uint64), 12).query) == 0


def test_a_batch_whose_probes_find_too_many_values_is_searched_in_halves_with_the_same_matches(monkeypatch):
    from dupe_scanner.analysis import neighbours

    rng = np.random.default_rng(5)
    stored = rng.integers(0, 2**63, 8, dtype=np.uint64)[rng.integers(0, 8, 2000)]
    for row in range(len(stored)):  # values crowding around eight hashes
        for bit in rng.choice(64, int(rng.integers(0, 6)), replace=False):
            stored[row] ^= np.uint64(1) << np.uint64(int(bit))
    queries = np.stack([stored[:300], ~stored[:300]], axis=1)
    index = MultiIndexHash(stored)
    whole = index.search(queries, HASH_RADIUS)
    batch_sizes = []
    search_batch = MultiIndexHash._search_batch

    def counted(self, some, offset, radius):
        batch_sizes.append(len(some))
        return search_batch(self, some, offset, radius)

    monkeypatch.setattr(neighbours, "FOUND_AT_ONCE", 500)
    monkeypatch.setattr(MultiIndexHash, "_search_batch", counted)
    halved = index.search(queries, HASH_RADIUS)
    assert min(batch_sizes) < neighbours.QUERY_BATCH
    for column in ("query", "stored", "orientation", "distance"):
        assert getattr(halved, column).tolist() == getattr(whole, column).tolist()


def test_a_point_is_owned_by_the_image_that_added_it_however_many_points_each_image_has():
    from dupe_scanner.analysis.candidates import PointOwners

    rows, counts = np.array([7, 3, 5, -1, 9]), np.array([2, 0, 3, 1, 1])  # image 3 has none; the fourth is gone
    owners = PointOwners(rows, counts)
    ids = np.array([[0, 1, 2, 3, 4], [5, 6, -1, -1, 0]])
    assert owners.of(ids).tolist() == [[7, 7, 5, 5, 5], [-1, 9, -1, -1, 7]]
    assert owners.of(ids).tolist() == np.where(ids >= 0, np.repeat(rows, counts)[np.maximum(ids, 0)], -1).tolist()
    assert PointOwners(np.array([4]), np.array([0])).of(np.array([[-1, -1]])).tolist() == [[-1, -1]]


def test_points_are_owned_by_the_right_image_when_images_hold_many_points_or_few():
    from dupe_scanner.analysis.candidates import OWNER_BUCKET_SHIFT, PointOwners

    # Images of 0 to 5 buckets' worth of points, many in one bucket or one across several.
    rng = np.random.default_rng(5)
    counts = rng.choice([0, 1, 2, 31, 32, 33, 5 << OWNER_BUCKET_SHIFT], size=400)
    rows = rng.permutation(len(counts)) - 1  # one image is gone (-1)
    owners = PointOwners(rows, counts)
    ids = np.concatenate([np.arange(int(counts.sum())), [-1]])
    assert owners.of(ids).tolist() == np.where(ids >= 0, np.repeat(rows, counts)[np.maximum(ids, 0)], -1).tolist()


def test_reachable_says_what_a_search_finds():
    rng = np.random.default_rng(4)
    stored = rng.integers(0, 2**63, 400, dtype=np.uint64)
    stored[200:] = stored[:200] ^ (np.uint64(1) << rng.integers(0, 64, 200).astype(np.uint64))
    queries = np.stack([stored[:50], stored[50:100]], axis=1)
    found = MultiIndexHash(stored).search(queries, HASH_RADIUS)
    for row in range(50):
        assert set(np.nonzero(reachable(queries[row], stored, HASH_RADIUS))[0].tolist()) == set(found.stored[found.query == row].tolist())


def test_a_crowd_of_identical_hashes_gives_a_few_candidates_a_picture_all_in_one_star():
    hashes = np.tile(np.arange(8, dtype=np.uint64) + np.uint64(2**40), (5000, 1))
    age = np.random.default_rng(5).permutation(5000)
    pairs = hash_candidates(hashes, np.arange(5000), age)
    by_query: dict[int, list[int]] = {}
    for query, stored, _ in pairs:
        assert age[stored] < age[query]
        by_query.setdefault(query, []).append(stored)
    assert all(len(older) <= HASH_NEIGHBOURS for older in by_query.values())
    assert len(pairs) <= 5000 * CROWD_NEIGHBOURS + CROWDED**2
    # The crowd meets its first pictures: everything is linked to the oldest.
    oldest = int(np.argmin(age))
    assert all(oldest in older for older in by_query.values())
    assert len(by_query) == 4999
    # Those beyond the first CROWDED know they are in a crowd (and search no keypoints).
    _, crowded = hash_search(hashes, np.arange(5000), age)
    assert crowded == {row for row in range(5000) if age[row] > CROWDED}


def test_a_family_keeps_every_pair_however_crowded_the_library_around_it():
    rng = np.random.default_rng(6)
    family = rng.integers(0, 2**63, 1, dtype=np.uint64)[0]
    crowd = rng.integers(0, 2**63, 1, dtype=np.uint64)[0]
    bit = lambda *at: sum(np.uint64(1) << np.uint64(b % 64) for b in at)  # noqa: E731
    # 139 pictures within reach of one another, as the labelled set's most crowded look-alikes.
    members = [family ^ bit(b) for b in range(64)] + [family ^ bit(b, b + 1, b + 2) for b in range(75)]
    stored = np.array(members + [crowd] * 3000, dtype=np.uint64)
    hashes = np.repeat(stored[:, None], 8, axis=1)
    pairs = {(min(a, b), max(a, b)) for a, b, _ in hash_candidates(hashes, np.arange(len(stored)), np.arange(len(stored)))}
    assert {(a, b) for a in range(len(members)) for b in range(a + 1, len(members))} <= pairs
    assert len(pairs) <= len(members) ** 2 / 2 + 3000 * CROWD_NEIGHBOURS + CROWDED**2 / 2


def far_neighbours_of_one_query(far_count: int, near_count: int) -> tuple[np.ndarray, list[int], list[int]]:
    """Hashes of stored pictures 1.. and a query (the last row): ``near_count`` of them
    NEAR_BITS or fewer bits from the query, ``far_count`` further (up to 11, which the search always reaches), none nearer than the one before."""
    query = np.uint64(0x0123_4567_89AB_CDEF)
    flips = lambda count, start: sum(np.uint64(1) << np.uint64((start + 5 * b) % 64) for b in range(count))  # noqa: E731
    near = [query ^ flips(1 + n % NEAR_BITS, n) for n in range(near_count)]
    far = [query ^ flips(NEAR_BITS + 1 + n * (HASH_RADIUS - NEAR_BITS - 2) // max(1, far_count - 1), n) for n in range(far_count)]
    stored = np.array(near + far + [query], dtype=np.uint64)
    return np.repeat(stored[:, None], 8, axis=1), list(range(near_count)), list(range(near_count, near_count + far_count))


def test_a_querys_far_hash_neighbours_are_asked_a_block_at_a_time_nearest_first():
    from dupe_scanner.analysis.candidates import FAR_BLOCK, propose

    hashes, near, far = far_neighbours_of_one_query(far_count=2 * FAR_BLOCK + 3, near_count=3)
    query = len(hashes) - 1
    keys = [f"key{row:03d}" for row in range(len(hashes))]
    candidates = propose(keys, hashes, np.array([query]), age=np.arange(len(hashes)))
    asked = {int(row[1]) for row in candidates.rows}
    assert asked == set(near) | set(far[:FAR_BLOCK])  # the near ones, and the nearest block of the far
    assert {int(row[1]) for row in candidates.waiting.earned(1, {query}).rows} == set(far[FAR_BLOCK : 2 * FAR_BLOCK])
    assert {int(row[1]) for row in candidates.waiting.earned(2, {query}).rows} == set(far[2 * FAR_BLOCK :])
    assert not len(candidates.waiting.earned(1, set())) and not len(candidates.waiting.earned(3, {query}))


def test_a_verified_pair_in_a_block_is_told_by_its_keys_in_either_order():
    from dupe_scanner.analysis.candidates import propose

    hashes, _, far = far_neighbours_of_one_query(far_count=4, near_count=0)
    query = len(hashes) - 1
    keys = ["z-query" if row == query else f"key{row}" for row in range(len(hashes))]
    candidates = propose(keys, hashes, np.array([query]), age=np.arange(len(hashes)))
    assert candidates.waiting.of_block(0, keys) == {(f"key{row}", "z-query"): query for row in far}


def test_a_query_with_few_far_neighbours_has_them_all_asked_at_once():
    from dupe_scanner.analysis.candidates import FAR_BLOCK, propose

    hashes, near, far = far_neighbours_of_one_query(far_count=FAR_BLOCK, near_count=2)
    candidates = propose([f"k{row}" for row in range(len(hashes))], hashes, np.array([len(hashes) - 1]), age=np.arange(len(hashes)))
    assert {int(row[1]) for row in candidates.rows} == set(near) | set(far)
    assert not len(candidates.waiting.earned(1, {len(hashes) - 1}))


def test_best_pairs_keeps_one_spelling_per_pair_and_the_closest_orientation():
    first, second, orientation, distance = best_pairs(
        np.array([0, 1, 0, 2]), np.array([1, 0, 1, 2]), np.array([3, 5, 0, 1]), np.array([4, 2, 6, 0])
    )
    assert list(zip(first, second, orientation, distance, strict=True)) == [(1, 0, 5, 2)]


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


def test_a_batch_leaves_out_the_candidates_of_a_damaged_fingerprint_and_names_it():
    picture = photo(5)
    whole = encode(features_of(picture, picture.size))
    smaller = picture.resize((320, 220), Image.Resampling.LANCZOS)
    blobs = {"whole": whole, "smaller": encode(features_of(smaller, smaller.size)), "cut": whole[: len(whole) // 3]}

    batch = score_batch(blobs, [("whole", "smaller", None), ("whole", "cut", None), ("cut", "smaller", None)])

    assert [(first, second) for first, second, _ in batch.scores] == [("whole", "smaller")]
    assert batch.scores[0][2] >= 0.6
    assert batch.damaged == ["cut"]


def test_a_fingerprint_cut_short_anywhere_does_not_decode():
    picture = photo(6)
    whole = encode(features_of(picture, picture.size))
    for length in range(0, len(whole), 97):
        with pytest.raises(ValueError):
            decode(whole[:length])
    assert decode(whole) is not None


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


def _watermarked(picture: Image.Image) -> Image.Image:
    from PIL import ImageDraw, ImageFont

    marked = picture.copy()
    draw = ImageDraw.Draw(marked)
    font = ImageFont.load_default(size=44)
    for row in range(4):
        draw.text((30, 20 + row * 110), "(c) SAMPLE STUDIO", fill=(250, 250, 250), font=font, stroke_width=2, stroke_fill=(20, 20, 20))
    return marked


def _gradient(size: tuple[int, int], horizontal: bool, colours: tuple[tuple[int, int, int], tuple[int, int, int]]) -> Image.Image:
    width, height = size
    ramp = np.linspace(0.0, 1.0, width if horizontal else height)
    ramp = ramp[None, :, None] if horizontal else ramp[:, None, None]
    start, end = (np.array(c, dtype=np.float64) for c in colours)
    pixels = np.broadcast_to(start + (end - start) * ramp, (height, width, 3))
    return Image.fromarray(pixels.astype(np.uint8))


def test_two_different_plain_pictures_under_one_watermark_are_not_duplicates():
    dawn = _gradient((640, 460), True, ((40, 60, 160), (240, 150, 60)))
    dusk = _gradient((640, 460), False, ((230, 210, 90), (30, 40, 70)))
    assert score_pair(_features(_watermarked(dawn)), _features(_watermarked(dusk)), None).score < 0.6


def test_a_watermarked_copy_of_a_photograph_is_a_duplicate():
    original = photo(23, (640, 460))
    assert score_pair(_features(original), _features(_watermarked(original)), None).verified


def _night_sky(seed: int, size: tuple[int, int] = (512, 512)) -> Image.Image:
    """A deep-sky photograph: a glowing object of its own shape at the centre of a black sky sprinkled with stars."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    sky = _centred_glow(rng, size, parts=6, wander=20, widest=10, narrowest=40)
    for _ in range(int(rng.integers(40, 80))):
        cx, cy, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.6, 2.0)
        sky += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))[..., None] * rng.uniform(120, 255)
    return Image.fromarray(np.clip(sky + rng.normal(0, 2, sky.shape), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("seed", [8, 23, 31])
def test_two_different_objects_on_a_black_sky_are_not_duplicates(seed):
    # Both plain black but for a glow at the centre: they align, and agree where both are
    # dark and around the glows, yet each has edges (stars, the object's shape) the other lacks.
    verdict = score_pair(_features(_night_sky(seed)), _features(_night_sky(seed + 100)), None)
    assert not verdict.verified and "edges the other lacks" in verdict.reason


def test_a_captioned_copy_of_a_night_sky_is_a_duplicate():
    from PIL import ImageDraw, ImageFont

    sky = _night_sky(8)
    captioned = sky.copy()
    ImageDraw.Draw(captioned).text((20, 440), "M 42  Orion nebula  2026-11-30", fill=(230, 230, 230), font=ImageFont.load_default(size=28))
    assert score_pair(_features(sky), _features(captioned), None).verified


def _centred_glow(rng: np.random.Generator, size: tuple[int, int], parts: int, wander: float, widest: float, narrowest: float) -> np.ndarray:
    """A glowing object of its own shape near the centre of a black frame: ``parts`` coloured
    Gaussian blobs, each off the centre by about 1/``wander`` of the frame and between
    1/``narrowest`` and 1/``widest`` of it across (float RGB, 0 and up)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    glow = np.zeros((height, width, 3))
    for _ in range(parts):
        cx, cy = width / 2 + rng.normal(0, width / wander), height / 2 + rng.normal(0, height / wander)
        sx, sy = rng.uniform(width / narrowest, width / widest, 2)
        glow += np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2) / 2)[..., None] * rng.uniform(60, 200, 3)
    return glow


def _glow(seed: int, side: int = 400) -> Image.Image:
    """A small soft subject of its own shape alone at the centre of a black ground (no stars)."""
    rng = np.random.default_rng(seed)
    glow = _centred_glow(rng, (side, side), parts=5, wander=28, widest=14, narrowest=60)
    return Image.fromarray(np.clip(glow + rng.normal(0, 1.5, glow.shape), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("seed", [1, 13, 21])
def test_two_different_small_subjects_on_a_plain_ground_are_not_duplicates(seed):
    # Detail in a fifth of the frame, and no keypoints: the two glows agree cell by cell (a
    # blob's edges point outwards like any other's), but not pixel by pixel.
    verdict = score_pair(_features(_glow(seed)), _features(_glow(seed + 100)), None)
    assert not verdict.verified and "small subjects on a plain ground" in verdict.reason


@pytest.mark.parametrize("seed", [1, 13, 21])
def test_a_brightened_smaller_copy_of_a_small_subject_is_a_duplicate(seed):
    glow = _glow(seed)
    copy = ImageEnhance.Brightness(glow).enhance(1.3).resize((300, 300), Image.Resampling.LANCZOS)
    assert score_pair(_features(glow), _features(copy), None).verified


TILE_COLOURS = [(230, 230, 235), (120, 50, 190), (220, 120, 20)]  # pale grey, purple, orange


def _tiling(colours: list[int], seed: int, side: int = 400) -> Image.Image:
    """A square grid of flat tiles in ``TILE_COLOURS`` (indices, row by row) on dark grout."""
    across = int(len(colours) ** 0.5)
    tile = side // across
    picture = np.full((side, side, 3), 20.0)
    for place, colour in enumerate(colours):
        top, left = divmod(place, across)
        picture[top * tile + 6 : (top + 1) * tile, left * tile + 6 : (left + 1) * tile] = TILE_COLOURS[colour]
    picture += np.random.default_rng(seed).normal(0, 2, picture.shape)
    return Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))


def _tile_colours(seed: int) -> list[int]:
    return [int(colour) for colour in np.random.default_rng(seed).integers(0, 3, 16)]


def _hue_turned(picture: Image.Image, degrees: int) -> Image.Image:
    hsv = np.asarray(picture.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + degrees * 256 // 360) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_two_tilings_whose_tiles_swap_colours_place_by_place_are_not_duplicates(seed):
    # One grid, every edge in its place: every other purple tile is orange in the other
    # picture and every other orange one purple, the rest as they were. No single change of
    # colour turns one into the other, either way.
    colours = _tile_colours(seed)
    seen = {1: 0, 2: 0}
    swapped = []
    for colour in colours:
        if colour in seen:
            seen[colour] += 1
            colour = 3 - colour if seen[colour] % 2 == 0 else colour
        swapped.append(colour)
    assert min(seen.values()) >= 2
    first, second = _features(_tiling(colours, seed)), _features(_tiling(swapped, seed + 50))
    assert not score_pair(first, second, None).verified and not score_pair(second, first, None).verified
    # Aligned edge on edge, it is the colours that tell them apart (from the other side the
    # keypoints may pair the tiles one period off, and the frames do not nest).
    edge_on_edge = _score_from(first, second, None)
    assert not edge_on_edge.verified and "colours differ place by place" in edge_on_edge.reason


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_copy_with_every_colour_changed_alike_is_a_duplicate(seed):
    tiling = _tiling(_tile_colours(seed), seed)
    copies = {
        "hue turned by 90 degrees": _hue_turned(tiling, 90),
        "greyscale": ImageOps.grayscale(tiling).convert("RGB"),
        "tinted blue": Image.blend(tiling, Image.new("RGB", tiling.size, (0, 60, 255)), 0.4),
        "saturated": ImageEnhance.Color(tiling).enhance(2.0),
    }
    for change, copy in copies.items():
        assert score_pair(_features(tiling), _features(copy), None).verified, change


def test_the_template_search_finds_a_crop_of_a_smooth_picture_but_not_a_likeness_in_another():
    # Soft pictures have few keypoints, so a crop of one is found by template search; the
    # gradients of two different soft pictures also correlate a little, which is no relation.
    smooth = _smooth_picture()
    assert from_template(_features(smooth), _features(smooth.crop((60, 40, 560, 360))), 0) is not None
    soft, other = (photo(seed).filter(ImageFilter.GaussianBlur(12)) for seed in (2, 52))
    assert from_template(_features(soft), _features(other.crop((100, 50, 500, 350))), 0) is None


def test_a_likeness_that_matches_poorly_at_half_size_is_not_searched_again_at_full_size(monkeypatch):
    from dupe_scanner.analysis.verify import relation

    searched_at_full_size = []
    full_size = relation._TemplateSearch.at_full_size

    def recorded(search):
        searched_at_full_size.append(search)
        return full_size(search)

    monkeypatch.setattr(relation._TemplateSearch, "at_full_size", recorded)
    soft, other = (photo(seed).filter(ImageFilter.GaussianBlur(12)) for seed in (2, 52))
    assert from_template(_features(soft), _features(other.crop((100, 50, 500, 350))), 0) is None
    assert searched_at_full_size == []
    smooth = _smooth_picture()
    assert from_template(_features(smooth), _features(smooth.crop((60, 40, 560, 360))), 0) is not None
    assert len(searched_at_full_size) >= relation.TEMPLATE_FINALISTS


def test_the_template_search_puts_a_crop_where_it_was_cut_from_either_side():
    # Searched at half size first, then near there at full size: the place and scale must
    # still be the cut's to within the search's step (3 % of scale, a thumbnail pixel).
    smooth = _smooth_picture()  # 640 x 400: a 160 x 100 thumbnail, 4 pixels of it to one
    crop = smooth.crop((60, 40, 560, 360))  # 500 x 320: a 160 x 102 thumbnail, 3.125 to one
    scale = 3.125 / 4
    offset = np.array([(60 + 0.5 * 3.125) / 4 - 0.5, (40 + 0.5 * 3.125) / 4 - 0.5])
    crop_in_original = from_template(_features(smooth), _features(crop), 0)
    original_in_crop = from_template(_features(crop), _features(smooth), 0)
    assert crop_in_original is not None and original_in_crop is not None
    found = crop_in_original.matrix
    assert np.allclose(np.diag(found[:, :2]), scale, rtol=0.03)
    assert np.allclose(found[:, 2], offset, atol=1.5)
    inverse = cv2.invertAffineTransform(original_in_crop.matrix)  # the same map, found from the other side
    assert np.allclose(np.diag(inverse[:, :2]), scale, rtol=0.03)
    assert np.allclose(inverse[:, 2], offset, atol=1.5)


def test_a_wide_jpeg_is_decoded_at_the_smallest_scale_that_keeps_its_long_side(tmp_path):
    from dupe_scanner.imaging import open_upright

    path = tmp_path / "wide.jpg"
    Image.new("RGB", (4000, 2000), (90, 120, 150)).save(path, quality=80)
    assert open_upright(path, draft_side=460)[0].size == (500, 250)  # 1/8: both sides may fall short of 460
    assert open_upright(path, draft_side=600)[0].size == (1000, 500)
    assert open_upright(path)[0].size == (4000, 2000)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_every_exif_orientation_is_decoded_as_displayed(tmp_path, orientation, suffix):
    from dupe_scanner.imaging import open_upright

    shown = Image.new("RGB", (48, 24), (0, 0, 0))
    shown.paste((255, 255, 255), (0, 0, 12, 8))  # a white corner, top left as displayed
    stored_as = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    stored = shown.transpose(stored_as[orientation]) if orientation in stored_as else shown
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned{suffix}"
    stored.save(path, exif=exif)
    upright, _format, full_size = open_upright(path, draft_side=460)
    assert upright.size == full_size == (48, 24)
    assert np.array(upright.convert("L"))[:8, :12].mean() > 200 and np.array(upright.convert("L"))[16:, 36:].mean() < 50


def spread_one_by_one(positions, responses, width, height):
    """``spread_strongest`` as a loop over the points: strongest first, each cell's first few."""
    per_cell = ORB_FEATURES // (GRID * GRID) + 1
    cells: dict[tuple[int, int], list[int]] = {}
    for at in sorted(range(len(responses)), key=lambda at: -responses[at]):
        x, y = positions[at]
        cell = (min(GRID - 1, int(float(x) * GRID / width)), min(GRID - 1, int(float(y) * GRID / height)))
        bucket = cells.setdefault(cell, [])
        if len(bucket) < per_cell:
            bucket.append(at)
    return sorted((at for bucket in cells.values() for at in bucket), key=lambda at: -responses[at])[:ORB_FEATURES]


def test_a_busy_corner_gives_its_few_strongest_points_and_the_rest_of_the_picture_the_others():
    per_cell = ORB_FEATURES // (GRID * GRID) + 1
    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 40, (500, 2))  # one cell of a 300 x 300 picture
    elsewhere = rng.uniform(60, 300, (60, 2))
    positions = np.vstack([corner, elsewhere]).astype(np.float32)
    responses = np.concatenate([rng.uniform(50, 100, 500), rng.uniform(0, 10, 60)])  # the corner's all stronger
    chosen = spread_strongest(positions, responses, 300, 300)
    assert np.sum(chosen < 500) == per_cell
    assert set(chosen[chosen < 500]) == set(np.argsort(-responses[:500])[:per_cell])
    assert np.all(np.diff(responses[chosen]) <= 0), "strongest first"


@pytest.mark.parametrize("seed", range(4))
def test_spreading_the_points_picks_what_a_loop_over_them_picks_ties_included(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 3000))
    positions = (rng.uniform(0, 1, (count, 2)) * [500, 375]).astype(np.float32)
    responses = rng.integers(0, 40, count).astype(np.float64)  # many equal responses
    chosen = spread_strongest(positions, responses, 500, 375)
    assert chosen.tolist() == spread_one_by_one(positions, responses, 500, 375)


def test_keypoints_showing_another_shot_outweigh_a_whole_frame_alignment(monkeypatch):
    """A repeating pattern lines up one period off as a whole frame; the keypoints' own
    correspondences show the shift, and their verdict (another shot) is the answer."""
    import dupe_scanner.analysis.pairing as pairing
    from dupe_scanner.analysis.verify import Relation, Verdict

    whole_frame = Relation(0, False, np.eye(2, 3, dtype=np.float32))
    shifted = Relation(0, False, np.array([[1, 0, 7.5], [0, 1, 7.5]], dtype=np.float32))
    verdicts = {
        id(whole_frame): Verdict(0.91, True, "crop 0.02 overlay 0.00 light 0.07 colour 0.02"),
        id(shifted): Verdict(0.49, False, "neither frame contains the other (0.908, 0.909)", decided=True),
    }
    monkeypatch.setattr(pairing, "full_frame", lambda a, b, orientation: whole_frame)
    monkeypatch.setattr(pairing, "from_keypoints", lambda a, b: shifted)
    monkeypatch.setattr(pairing, "verify", lambda a, b, relation, guessed=False, hash_alone=False, textured_strangers=False: verdicts[id(relation)])
    verdict = score_pair(None, None, 0)  # type: ignore[arg-type]  # every step that reads features is stubbed
    assert not verdict.verified and verdict.score < 0.6

    verdicts[id(shifted)] = Verdict(0.85, True, "crop 0.10 overlay 0.00 light 0.00 colour 0.00")  # a crop: the better score wins
    assert score_pair(None, None, 0).score == 0.91  # type: ignore[arg-type]  # as above

    # Nothing visible between two frames of one size: the keypoints' shift says nothing then.
    verdicts[id(whole_frame)] = Verdict(1.0, True, "pixel-identical")
    verdicts[id(shifted)] = Verdict(0.49, False, "neither frame contains the other (0.908, 0.909)", decided=True)
    assert score_pair(None, None, 0).score == 1.0  # type: ignore[arg-type]  # as above


def test_two_frames_of_one_size_aligned_as_they_are_cover_each_other_whole():
    """The overlap of two coinciding outlines, with the float noise an alignment leaves (OpenCV's
    own polygon intersection lost half of it)."""
    from dupe_scanner.analysis.verify.alignment import coverage

    almost_identity = np.array([[1.0, 2.3e-11, 2.3e-8], [1.6e-10, 1.0, -6.2e-9]], np.float32)
    assert coverage(almost_identity, (160, 128), (160, 128)) == pytest.approx((1.0, 1.0))
    assert coverage(np.eye(2, 3, dtype=np.float32), (160, 128), (80, 64)) == pytest.approx((0.25, 1.0))
    halfway = np.array([[1.0, 0.0, 64.0], [0.0, 1.0, 0.0]], np.float32)
    assert coverage(halfway, (160, 128), (160, 128)) == pytest.approx((0.5, 0.5))


def test_the_same_pixels_are_a_duplicate_however_a_repeating_patterns_keypoints_pair_up():
    """A tiled pattern saved again in another format: its keypoints pair up one period off
    (another shot, by the rule above), yet nothing visible tells the two frames apart."""
    from tests.photos import make_photo

    period = 96
    tile = np.asarray(make_photo(2, (period, period)))
    pattern = Image.fromarray(np.tile(tile, (5, 4, 1)))
    decoded = Image.open(_saved(pattern, "JPEG")).convert("RGB")
    converted = Image.open(_saved(decoded, "PNG")).convert("RGB")  # the same pixels
    verdict = score_pair(features_of(decoded, decoded.size), features_of(converted, converted.size), None)
    assert verdict.verified and verdict.score == 1.0, verdict.reason


def _saved(picture: Image.Image, image_format: str) -> io.BytesIO:
    buffer = io.BytesIO()
    picture.save(buffer, image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    buffer.seek(0)
    return buffer


def _smooth_picture(size: tuple[int, int] = (640, 400)) -> Image.Image:
    """A wallpaper-like picture: a colour ramp and a few large soft shapes, little fine detail."""
    from PIL import ImageDraw, ImageFilter

    picture = _gradient(size, True, ((30, 70, 140), (230, 170, 90)))
    draw = ImageDraw.Draw(picture)
    width, height = size
    shapes = ((60, 40, 300, 260, (200, 90, 60)), (380, 120, 600, 380, (40, 150, 110)), (220, 250, 420, 390, (240, 230, 200)))
    for left, top, right, bottom, colour in shapes:
        draw.ellipse((left * width // 640, top * height // 400, right * width // 640, bottom * height // 400), fill=colour)
    return picture.filter(ImageFilter.GaussianBlur(6))


def _text_block(picture: Image.Image) -> Image.Image:
    """Meme-style lines of large text over the middle third of the picture."""
    from PIL import ImageDraw, ImageFont

    captioned = picture.copy()
    draw = ImageDraw.Draw(captioned)
    font = ImageFont.load_default(size=picture.height // 9)
    for line, words in enumerate(("BEST DAY", "SUMMER 2024", "NOT FOR SALE")):
        at = (20, picture.height // 3 + line * picture.height // 8)
        draw.text(at, words, font=font, fill=(255, 255, 40), stroke_width=3, stroke_fill=(0, 0, 0))
    return captioned


def test_large_text_over_a_smooth_picture_is_a_duplicate():
    """The text's sharp edges outweigh the picture's soft ones: they are an overlay, and
    neither the alignment nor the content check may take them for the picture."""
    original = _smooth_picture()
    verdict = score_pair(_features(original), _features(_text_block(original)), None)
    assert verdict.verified, verdict.reason


def test_large_text_with_the_light_changed_too_is_a_duplicate():
    """A caption and a filter: around the text the picture is the same, only darker."""
    from PIL import ImageEnhance

    original = _smooth_picture()
    darkened = ImageEnhance.Brightness(_text_block(original)).enhance(0.8)
    verdict = score_pair(_features(original), _features(darkened), None)
    assert verdict.verified, verdict.reason


def _wallpaper(ramp: tuple[tuple[int, int, int], tuple[int, int, int]], blob: tuple[tuple[int, int, int, int], tuple[int, int, int]]) -> Image.Image:
    from PIL import ImageDraw, ImageFilter

    picture = _gradient((640, 400), True, ramp)
    box, colour = blob
    ImageDraw.Draw(picture).ellipse(box, fill=colour)
    return picture.filter(ImageFilter.GaussianBlur(6))


def _login_screen(wallpaper: Image.Image, clock: str, logo: str | None) -> Image.Image:
    """A login screen's furniture (clock, avatars, fields, buttons) over a wallpaper."""
    from PIL import ImageDraw, ImageFont

    screen = wallpaper.copy()
    draw = ImageDraw.Draw(screen)
    width, height = screen.size
    draw.text((width // 2 - 60, height // 8), clock, font=ImageFont.load_default(size=height // 10), fill=(255, 255, 255))
    for avatar in range(3):
        left = width // 2 - 70 + avatar * 50
        draw.ellipse((left, height // 3, left + 40, height // 3 + 40), outline=(255, 255, 255), width=3)
    draw.rectangle((width // 2 - 80, height // 2, width // 2 + 80, height // 2 + 18), fill=(250, 250, 250))
    draw.rectangle((width // 2 - 80, height // 2 + 26, width // 2 + 80, height // 2 + 44), fill=(200, 200, 200))
    for place, word in enumerate(("Suspend", "Restart", "Shut down")):
        draw.text((width // 2 - 90 + place * 70, 2 * height // 3), word, font=ImageFont.load_default(size=height // 30), fill=(255, 255, 255))
    if logo:
        draw.text((int(width * 0.62), int(height * 0.72)), logo, font=ImageFont.load_default(size=height // 8), fill=(220, 240, 240))
    return screen


def test_the_same_login_screen_over_two_wallpapers_is_not_a_duplicate():
    """The logo one screen has over a smooth patch of the other's wallpaper looks like an
    overlay, but outside it the two differ in light as well: two pictures, not one edited."""
    night = _wallpaper(((10, 20, 60), (40, 90, 170)), ((380, 40, 700, 300), (60, 110, 200)))
    teal = _wallpaper(((70, 150, 150), (20, 70, 80)), ((-100, 200, 200, 500), (40, 110, 110)))
    verdict = score_pair(_features(_login_screen(night, "21:57", None)), _features(_login_screen(teal, "23:40", "debian")), None)
    assert not verdict.verified and verdict.score < 0.6


def test_another_shot_tilted_by_less_than_a_degree_is_not_a_duplicate():
    """An edit turns a picture by quarter turns; a hand-held second shot is turned a little."""
    scene = photo(24, (760, 520))
    original = scene.crop((60, 40, 700, 480))
    tilted = scene.rotate(0.9, Image.Resampling.BICUBIC).crop((60, 40, 700, 480))
    verdict = score_pair(_features(original), _features(tilted), None)
    assert not verdict.verified and verdict.score < 0.6


def _seen_from_the_side(picture: Image.Image, squeeze: float) -> Image.Image:
    """The picture seen from its right: its left edge squeezed by ``squeeze`` of the height at top
    and bottom (a keystone), then cut to the middle 86 % as another shot's frame would be."""
    width, height = picture.size
    corners = [(0, squeeze * height), (width, 0), (width, height), (0, height - squeeze * height)]
    rows = []
    for (x, y), (u, v) in zip([(0, 0), (width, 0), (width, height), (0, height)], corners, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
    coefficients = np.linalg.solve(np.array(rows, float), np.array(corners, float).reshape(8))
    return _middle(picture.transform(picture.size, Image.Transform.PERSPECTIVE, coefficients.tolist(), Image.Resampling.BICUBIC))


def _middle(picture: Image.Image, share: float = 0.86) -> Image.Image:
    width, height = picture.size
    left, top = round(width * (1 - share) / 2), round(height * (1 - share) / 2)
    return picture.crop((left, top, width - left, height - top))


def _wallpaper_with_detail_on_one_side(seed: int) -> Image.Image:
    """A smooth ramp with a photograph's detail in a round patch on its right third (a login
    wallpaper's logo, a desktop's emblem): the smooth part hides a bend from the checks of the frame."""
    from PIL import ImageDraw

    picture = _gradient((760, 480), True, ((20, 80, 90), (40, 120, 120)))
    detail = photo(seed, (228, 480))
    patch = Image.new("L", picture.size, 0)
    ImageDraw.Draw(patch).ellipse((486, 60, 900, 560), fill=255)
    picture.paste(detail, (532, 0), patch.crop((532, 0, 760, 480)))
    return picture


@pytest.mark.parametrize("squeeze", [0.09, 0.12])
def test_another_shot_bent_by_perspective_is_not_a_duplicate(squeeze):
    """Seen from the side, a wallpaper's smooth part aligns at any map and its detail at an
    affine one on average: frames nest, content agrees. Only a perspective map fits it all."""
    scene = _wallpaper_with_detail_on_one_side(30)
    sharpened = _middle(scene).filter(ImageFilter.UnsharpMask(2, 150, 2))
    verdict = score_pair(_features(sharpened), _features(_seen_from_the_side(scene, squeeze)), None)
    assert not verdict.verified and verdict.score < 0.6


def test_a_perspective_map_explains_what_an_affine_one_leaves_of_a_bent_view_but_not_of_an_edit():
    scene = _wallpaper_with_detail_on_one_side(30)
    original = _features(_middle(scene))

    def bend_against(other: Image.Image) -> alignment.Bend | None:
        copy = _features(other)
        a_view, b_view = original.thumb, copy.thumb
        start = full_frame(original, copy, 0).matrix
        return alignment.bend(a_view, b_view, alignment.refine(a_view, b_view, start), None)

    bent = bend_against(_seen_from_the_side(scene, 0.12))
    assert bent is not None
    assert bent.misfit > MIN_BEND_MISFIT and bent.departure > MAX_BEND and bent.left < MAX_BEND_LEFT
    brightened = ImageEnhance.Brightness(_middle(scene)).enhance(1.2).filter(ImageFilter.GaussianBlur(1.5))
    edited = bend_against(brightened)
    assert edited is not None
    assert edited.departure < MAX_BEND / 4 and edited.left > MAX_BEND_LEFT


def test_a_crop_of_a_picture_with_hundreds_of_copies_is_still_proposed():
    """Every point of a picture copied more than COMMON times is 'commonplace' by count; the
    copies hold it nearly exactly, so it still votes for them."""
    from dupe_scanner.analysis.candidates import COMMON, MIN_VOTES, PointsInMemory, keypoint_candidates, pairs_of

    rng = np.random.default_rng(5)
    picture = rng.integers(0, 256, (160, 32), dtype=np.uint8)
    copies = []
    for _ in range(COMMON + 40):
        copy = picture.copy()
        points, columns, bits = rng.integers(0, 160, 160), rng.integers(0, 32, 160), rng.integers(0, 8, 160)
        copy[points, columns] ^= (1 << bits).astype(np.uint8)  # about one flipped bit per point
        copies.append(copy)
    crop = picture[: 3 * MIN_VOTES]  # the points of a part of the picture
    stored = [*copies, crop]
    pairs = pairs_of(keypoint_candidates(PointsInMemory.of(stored), len(stored), {len(copies): [crop]}))
    assert pairs and all(first == len(copies) and second < len(copies) for first, second in pairs)


def _crowded_point_library(owner_hashes: np.ndarray, seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Pictures holding the same points, each a few bits apart, with ``owner_hashes`` as their
    hashes; among strangers enough to make the library deeper than COMMON; and a crop of the
    first: its points 10 bits from theirs (close, but not nearly equal, as a crop's are)."""
    from dupe_scanner.analysis.candidates import COMMON, MIN_VOTES

    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (3 * MIN_VOTES, 32), dtype=np.uint8)

    def flipped(descriptors: np.ndarray, bits: int) -> np.ndarray:
        changed = descriptors.copy()
        for point in changed:
            for bit in rng.choice(256, bits, replace=False):
                point[bit // 8] ^= np.uint8(1 << (bit % 8))
        return changed

    holders = [flipped(picture, 2) for _ in owner_hashes]
    strangers = [rng.integers(0, 256, (40, 32), dtype=np.uint8) for _ in range(COMMON // 8)]
    stored = [*holders, *strangers, flipped(picture, 10)]
    hashes = rng.integers(0, 2**63, (len(stored), 8), dtype=np.uint64)
    hashes[: len(owner_hashes), 0] = owner_hashes
    return stored, hashes, np.arange(len(stored))


def test_a_crop_meets_the_family_of_copies_that_crowds_its_points():
    """60 copies of a picture crowd each of its points, more than the first look sees; their
    hashes are one family's, so the crop's points are looked up deep and vote for them all."""
    from dupe_scanner.analysis.candidates import FIRST_LOOK, PointsInMemory, keypoint_candidates, pairs_of

    rng = np.random.default_rng(11)
    family = np.uint64(rng.integers(0, 2**63)) ^ (np.uint64(1) << rng.integers(0, 64, 60).astype(np.uint64))
    stored, hashes, age = _crowded_point_library(family, seed=3)
    assert len(family) > FIRST_LOOK
    crop = len(stored) - 1
    pairs = pairs_of(keypoint_candidates(PointsInMemory.of(stored), len(stored), {crop: [stored[crop]]}, age=age, hashes=hashes))
    assert {second for _, second in pairs} == set(range(40))  # its MOST_PER_IMAGE places, all the family's


def test_points_that_unrelated_pictures_share_are_commonplace_and_propose_nothing():
    """A texture or a grid's corner: 60 pictures hold the point, but their hashes are strangers'."""
    from dupe_scanner.analysis.candidates import PointsInMemory, keypoint_candidates, pairs_of

    rng = np.random.default_rng(12)
    strangers = rng.integers(0, 2**63, 60, dtype=np.uint64)
    stored, hashes, age = _crowded_point_library(strangers, seed=3)
    crop = len(stored) - 1
    assert pairs_of(keypoint_candidates(PointsInMemory.of(stored), len(stored), {crop: [stored[crop]]}, age=age, hashes=hashes)) == []
    # Without hashes to tell them apart, every crowded point is looked up deep, and votes.
    assert pairs_of(keypoint_candidates(PointsInMemory.of(stored), len(stored), {crop: [stored[crop]]}, age=age))


def test_the_pictures_the_hash_proposed_take_none_of_the_keypoint_places(monkeypatch):
    from dupe_scanner.analysis import candidates
    from dupe_scanner.analysis.candidates import Partners, PointsInMemory, keypoint_candidates, pairs_of

    rng = np.random.default_rng(8)
    picture = rng.integers(0, 256, (160, 32), dtype=np.uint8)
    stored = [picture, picture.copy(), picture[:100].copy(), picture[:60].copy()]  # votes: 160, 100, 60
    monkeypatch.setattr(candidates, "MOST_PER_IMAGE", 1)
    queries = {0: [picture]}
    assert pairs_of(keypoint_candidates(PointsInMemory.of(stored), 4, queries)) == [(0, 1)]
    by_hash = Partners(np.array([[1, 0], [2, 3]]), 4)
    assert by_hash.of(0).tolist() == [1] and by_hash.of(3).tolist() == [2] and by_hash.of(2).tolist() == [3]
    assert pairs_of(keypoint_candidates(PointsInMemory.of(stored), 4, queries, proposed=by_hash)) == [(0, 2)]


def test_a_querys_keypoint_candidates_are_asked_a_block_at_a_time_most_votes_first(monkeypatch):
    from dupe_scanner.analysis import candidates

    monkeypatch.setattr(candidates, "KEYPOINT_BLOCK", 3)
    rng = np.random.default_rng(9)
    picture = rng.integers(0, 256, (160, 32), dtype=np.uint8)
    shares = [150 - 10 * n for n in range(8)]  # the older pictures hold fewer and fewer of its points
    stored = [picture[:share].copy() for share in shares] + [picture]
    query = len(stored) - 1
    hashes = rng.integers(0, 2**63, (len(stored), 8), dtype=np.uint64)  # strangers by hash
    keys = [f"k{row}" for row in range(len(stored))]
    descriptors_of = lambda rows: {row: [stored[row]] for row in rows}  # noqa: E731
    proposed = candidates.propose(keys, hashes, np.array([query]), candidates.PointsInMemory.of(stored), descriptors_of, age=np.arange(len(stored)))
    assert {int(row[1]) for row in proposed.rows} == {0, 1, 2}  # the most votes
    assert {int(row[1]) for row in proposed.waiting.earned(1, {query}).rows} == {3, 4, 5}
    assert {int(row[1]) for row in proposed.waiting.earned(2, {query}).rows} == {6, 7}
    assert set(proposed.waiting.of_block(0, keys).values()) == {query}


def test_keypoints_leave_the_pictures_within_the_hash_reach_to_the_hash():
    """In a crowd the hash keeps a few neighbours of each picture; the keypoints must not
    propose the others, or a crowd of copies fills every keypoint place again."""
    from dupe_scanner.analysis.candidates import PointsInMemory, keypoint_candidates, pairs_of

    rng = np.random.default_rng(7)
    picture = rng.integers(0, 256, (160, 32), dtype=np.uint8)
    stored = [picture.copy() for _ in range(20)]
    hashes = np.zeros((20, 8), dtype=np.uint64)
    hashes[10:, :] = np.uint64(2**64 - 1)  # rows 10 to 19: their hash far from the query's
    hashes[19, :] = np.uint64(1)  # ...but row 19's within reach
    queries = {0: [picture]}
    age = np.arange(20)[::-1].copy()  # row 0 is the newest
    everything = set(pairs_of(keypoint_candidates(PointsInMemory.of(stored), 20, queries, age=age)))
    assert everything == {(0, row) for row in range(1, 20)}
    left = set(pairs_of(keypoint_candidates(PointsInMemory.of(stored), 20, queries, age=age, hashes=hashes)))
    assert left == {(0, row) for row in range(10, 19)}


def test_strangers_are_settled_without_an_alignment_but_a_crop_is_still_aligned(monkeypatch):
    import dupe_scanner.analysis.pairing as pairing

    aligned = []
    real_verify = pairing.verify

    def recorded(*args, **kwargs):
        aligned.append(args)
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(pairing, "verify", recorded)
    first, stranger = _features(photo(11)), _features(photo(12))
    verdict = score_pair(first, stranger, None)
    assert verdict == pairing.NO_EVIDENCE and not aligned
    original = photo(13)
    width, height = original.size
    crop = original.crop((width // 5, height // 6, width, height))
    assert score_pair(_features(original), _features(crop), None).verified
    assert aligned


def test_the_shallow_first_look_finds_every_close_point_a_full_search_finds():
    import faiss

    from dupe_scanner.analysis.candidates import COMMON, DESCRIPTOR_RADIUS, FIRST_LOOK, PointOwners, PointsInMemory, _nearest

    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (400, 32), dtype=np.uint8)
    crowd = base[:1].repeat(COMMON + 10, axis=0)  # one point with more close copies than COMMON
    crowd[np.arange(len(crowd)), rng.integers(0, 32, len(crowd))] ^= 1
    few = base[1:2].repeat(FIRST_LOOK // 2, axis=0)  # one with a few
    stored = np.ascontiguousarray(np.concatenate([base, crowd, few]))
    index = faiss.IndexBinaryFlat(256)
    index.add(stored)
    queries = np.ascontiguousarray(base[:50])

    def close_sets(distances, points):
        return [set(p[d < DESCRIPTOR_RADIUS].tolist()) for d, p in zip(distances, points, strict=True)]

    points = PointsInMemory(index, PointOwners(np.arange(len(stored)), np.ones(len(stored), dtype=np.int64)))
    distances, rows, commonplace = _nearest(points, queries, COMMON)
    full_distances, full_rows = index.search(queries, COMMON)
    assert close_sets(distances, rows) == close_sets(full_distances, full_rows)
    assert commonplace.tolist() == (full_distances[:, -1] < DESCRIPTOR_RADIUS).tolist() and commonplace[0]


def test_many_prefixes_decode_at_once_as_one_by_one_and_damaged_ones_are_left_out():
    from dupe_scanner.analysis.features import decode_hash_rows

    blobs = [encode(features_of(photo(seed), (640, 440))) for seed in (1, 2)]
    prefixes = [blobs[0][:PREFIX_BYTES], b"DSF0" + blobs[1][4:PREFIX_BYTES], blobs[1][:PREFIX_BYTES], blobs[1][:20]]
    valid, hashes = decode_hash_rows(prefixes)
    assert valid.tolist() == [True, False, True, False]
    assert np.array_equal(hashes, np.stack([decode_hashes(prefixes[0]), decode_hashes(prefixes[2])]))
    assert hashes.dtype == np.uint64


def _hash_apart(picture, reference, bits: int):
    """``picture`` with its hash as displayed ``bits`` bits from ``reference``'s."""
    flipped = int(reference.hashes[0]) ^ ((1 << bits) - 1)
    hashes = picture.hashes.copy()
    hashes[0] = np.uint64(flipped)
    return dataclasses.replace(picture, hashes=hashes)


def _with_few_keypoints(picture, count: int = 100):
    """``picture`` as if its keypoint detector had found only ``count`` points (a smooth picture)."""
    return dataclasses.replace(picture, keypoints=picture.keypoints[:count], descriptors=picture.descriptors[:count])


def _recording(monkeypatch, name: str) -> list:
    import dupe_scanner.analysis.pairing as pairing

    calls: list = []
    real = getattr(pairing, name)

    def recorded(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(pairing, name, recorded)
    return calls


def test_two_textured_strangers_a_hash_band_apart_are_settled_without_an_alignment(monkeypatch):
    import dupe_scanner.analysis.pairing as pairing
    from dupe_scanner.analysis.verify import hash_distance

    aligned = _recording(monkeypatch, "verify")
    first = _features(photo(11))
    stranger = _hash_apart(_features(photo(12)), first, 16)
    assert pairing.textured(first) and pairing.textured(stranger)
    assert hash_distance(first, stranger) == 16  # within EVIDENCE_HASH_DISTANCE, beyond the textured reach
    assert score_pair(first, stranger, None) == pairing.NO_EVIDENCE and not aligned
    # A smooth picture's copy may lose its keypoints to an edit: the same distance is worth aligning.
    assert score_pair(first, _with_few_keypoints(stranger), None) != pairing.NO_EVIDENCE and aligned


def test_no_template_search_between_two_textured_pictures_the_keypoints_do_not_relate(monkeypatch):
    import dupe_scanner.analysis.verify.verdict as verdict_module

    searched = _recording(monkeypatch, "from_template")
    first = _features(photo(16))
    stranger = _hash_apart(_features(photo(17)), first, 8)  # near enough to align the whole frames
    assert not score_pair(first, stranger, None).verified and not searched
    # Between smooth pictures a crop may leave the keypoints nothing to go by: searched, once
    # the layouts do not already settle it (these two photographs' do: MIN_FIRST_LAYOUT).
    monkeypatch.setattr(verdict_module, "MIN_FIRST_LAYOUT", -1.0)
    assert not score_pair(first, _with_few_keypoints(stranger), None).verified and searched


def _recording_refinements(monkeypatch) -> list:
    import dupe_scanner.analysis.verify.alignment as alignment

    refined: list = []
    real = alignment.refine

    def recorded(*args, **kwargs):
        refined.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(alignment, "refine", recorded)
    return refined


def test_a_smooth_stranger_only_the_hash_relates_is_settled_by_its_layout_before_any_alignment(monkeypatch):
    refined = _recording_refinements(monkeypatch)
    searched = _recording(monkeypatch, "from_template")
    first = _features(photo(16))
    stranger = _with_few_keypoints(_hash_apart(_features(photo(17)), first, 8))
    verdict = score_pair(first, stranger, None)
    assert not verdict.verified and "before any alignment" in verdict.reason
    assert not refined and not searched
    # A copy with its light changed keeps its layout where the hash puts it: aligned, and a duplicate.
    brighter = _with_few_keypoints(_features(photo(16).point(lambda level: min(255, int(level * 1.3)))), 4)  # fewer than a fit needs
    assert score_pair(first, brighter, 0).verified and refined


def _keypoints_lost(picture, seed: int):
    """``picture`` as if an edit (heavy blur or noise, say) had left it a full keypoint quota of
    points found nowhere in the original: textured still, and no keypoints relate the two."""
    rng = np.random.default_rng(seed)
    points = rng.random((ORB_FEATURES, 2), dtype=np.float32)
    mirrored = np.column_stack([1.0 - points[:, 0], points[:, 1]]).astype(np.float32)

    def descriptors():
        return rng.integers(0, 256, (ORB_FEATURES, 32), dtype=np.uint8)

    return dataclasses.replace(
        picture, keypoints=points, descriptors=descriptors(), mirror_keypoints=mirrored, mirror_descriptors=descriptors()
    )


def test_two_textured_strangers_no_keypoints_relate_are_settled_unaligned_when_their_gradients_do_not_correlate(monkeypatch):
    import dupe_scanner.analysis.pairing as pairing
    import dupe_scanner.analysis.verify.verdict as verdict_module
    from dupe_scanner.groups import KINSHIP

    refined = _recording_refinements(monkeypatch)
    # Laid out alike, as most of a library's strangers the hash proposes are (these two are not).
    monkeypatch.setattr(verdict_module, "MIN_FIRST_LAYOUT", -1.0)
    monkeypatch.setattr(verdict_module, "MIN_FIRST_LAYOUT_OTHER_SHAPES", -1.0)
    first = _features(photo(16))
    stranger = _hash_apart(_features(photo(17)), first, 8)  # within the textured reach: worth a look
    assert pairing.textured_strangers(first, stranger, None)
    assert alignment.stretch(full_frame(first, stranger, 0).matrix) <= verdict_module.ONE_SHAPE
    verdict = score_pair(first, stranger, None)
    assert not verdict.verified and "uncorrelated where the frames lie" in verdict.reason and not refined
    assert verdict.score < KINSHIP  # far apart to grouping, as an aligned stranger was
    # A frame of another shape is off by its cut at the estimate, whatever it is: aligned as before.
    other_shape = _hash_apart(_features(photo(17).crop((0, 0, 640, 400))), first, 8)
    assert alignment.stretch(full_frame(first, other_shape, 0).matrix) > verdict_module.ONE_SHAPE
    assert not score_pair(first, other_shape, None).verified and refined
    refined.clear()
    monkeypatch.setattr(verdict_module, "MIN_UNMOVED_CORRELATION", -1.0)
    assert not score_pair(first, stranger, None).verified and refined  # without the check: aligned first


def test_a_textured_copy_whose_keypoints_an_edit_defeated_is_still_aligned_and_found(monkeypatch):
    import dupe_scanner.analysis.pairing as pairing

    refined = _recording_refinements(monkeypatch)
    first = _features(photo(16))
    blurred = _keypoints_lost(_features(photo(16).filter(ImageFilter.GaussianBlur(6))), seed=3)  # correlates 0.96 unaligned
    assert pairing.textured_strangers(first, blurred, None)
    assert score_pair(first, blurred, None).verified and refined


def test_a_pair_settled_by_its_layout_at_first_sight_is_not_compared_further_and_stays_far_apart(monkeypatch):
    import dupe_scanner.analysis.verify.verdict as verdict_module
    from dupe_scanner.groups import KINSHIP

    layouts: list[bytes] = []
    structures: list[bytes] = []
    real_layout, real_structure = verdict_module.comparison.layout, verdict_module.comparison.structure

    def layout(overlapping):
        layouts.append(overlapping.warped.tobytes())
        return real_layout(overlapping)

    def structure(overlapping, *rest):
        structures.append(overlapping.warped.tobytes())
        return real_structure(overlapping, *rest)

    monkeypatch.setattr(verdict_module.comparison, "layout", layout)
    monkeypatch.setattr(verdict_module.comparison, "structure", structure)
    first = _features(photo(16))
    stranger = _with_few_keypoints(_hash_apart(_features(photo(17)), first, 8))
    settled = score_pair(first, stranger, None)
    assert "before any alignment" in settled.reason and layouts and not structures
    assert settled.score < KINSHIP  # grouping reads it as far apart, as a pair laid out that differently is
    # A pair that goes on is compared whole where it is judged; each layout is taken once.
    layouts.clear()
    brighter = _with_few_keypoints(_features(photo(16).point(lambda level: min(255, int(level * 1.3)))), 4)
    assert score_pair(first, brighter, 0).verified and structures
    assert len(layouts) == len(set(layouts))


def test_frames_of_other_shapes_only_the_hash_relates_must_be_laid_out_more_alike_before_they_are_aligned(monkeypatch):
    import dupe_scanner.analysis.verify.verdict as verdict_module
    from dupe_scanner.analysis.verify import comparison, full_frame
    from dupe_scanner.analysis.verify.relation import views

    refined = _recording_refinements(monkeypatch)
    first = _features(photo(16))
    same_shape = _with_few_keypoints(_hash_apart(_features(photo(17)), first, 8))
    other_shape = _with_few_keypoints(_hash_apart(_features(photo(17).resize((640, 360))), first, 8))

    def first_layout(other) -> float:
        relation = full_frame(first, other, 0)
        compared = comparison.compare(*views(first, other, relation), relation.matrix, first.levels, other.levels)
        assert compared is not None
        return compared.layout

    # Floors between which both pairs' layouts lie: only the frames of other shapes are settled.
    monkeypatch.setattr(verdict_module, "MIN_FIRST_LAYOUT", min(first_layout(same_shape), first_layout(other_shape)) - 0.01)
    monkeypatch.setattr(verdict_module, "MIN_FIRST_LAYOUT_OTHER_SHAPES", first_layout(other_shape) + 0.01)
    settled = score_pair(first, other_shape, 0)
    assert not settled.verified and "before any alignment" in settled.reason and not refined
    assert "before any alignment" not in score_pair(first, same_shape, 0).reason and refined


def test_frames_of_shapes_far_apart_only_the_hash_relates_are_judged_as_they_lie(monkeypatch):
    from dupe_scanner.analysis.verify import full_frame, verify

    refined = _recording_refinements(monkeypatch)
    first = _features(_smooth_picture((640, 400)))
    squashed = _with_few_keypoints(_features(_smooth_picture((640, 400)).resize((640, 300))))  # laid frame on frame: stretched a third
    verdict = verify(first, squashed, full_frame(first, squashed, 0), hash_alone=True)
    assert not verdict.verified and "not a similarity" in verdict.reason and not refined
    # Shapes nearer each other are aligned frame on frame: a small cut is within the alignment's reach.
    nearer = _with_few_keypoints(_features(_smooth_picture((640, 400)).resize((640, 380))))
    verify(first, nearer, full_frame(first, nearer, 0), hash_alone=True)
    assert refined


def test_a_guess_whose_cut_and_colour_already_show_too_much_is_rejected_before_it_is_aligned(monkeypatch):
    from dupe_scanner.analysis.verify import from_template, verify

    refined = _recording_refinements(monkeypatch)
    smooth = _smooth_picture()
    original = _features(smooth)
    cut = smooth.crop((0, 0, 480, 400))  # a quarter of the area cut away
    grey = _features(ImageOps.grayscale(cut).convert("RGB"))
    guess = from_template(original, grey, 0)
    assert guess is not None
    verdict = verify(original, grey, guess, guessed=True)
    assert not verdict.verified and "before any alignment" in verdict.reason and not refined
    # The same cut in its own colours shows no more than a guess may (greyed, it also lost its
    # colours): aligned, and a duplicate.
    coloured = _features(cut)
    in_colour = from_template(original, coloured, 0)
    assert in_colour is not None
    assert verify(original, coloured, in_colour, guessed=True).verified and refined


def test_no_template_search_where_even_the_largest_frame_it_could_guess_would_be_rejected_unaligned(monkeypatch):
    import dupe_scanner.analysis.pairing as pairing_module
    import dupe_scanner.analysis.verify.verdict as verdict_module
    from dupe_scanner.analysis.verify import guess_may_verify

    for floor in ("MIN_FIRST_LAYOUT", "MIN_FIRST_LAYOUT_OTHER_SHAPES"):
        monkeypatch.setattr(verdict_module, floor, -1.0)  # no layout settles these pairs at first sight
    smooth = _smooth_picture()
    original = _features(smooth)
    # A greyed narrow strip, its hash near enough to align: cut by almost two thirds, its colours gone.
    strip = _hash_apart(_with_few_keypoints(_features(ImageOps.grayscale(smooth.crop((0, 0, 240, 400))).convert("RGB")), 0), original, 8)
    assert not guess_may_verify(original, strip, 0)
    assert guess_may_verify(original, strip, 1)  # turned a quarter, the strip's shape fits: it may be a guess
    searched = _recording(monkeypatch, "from_template")
    verdict = score_pair(original, strip, 0)
    assert not verdict.verified and not searched
    # The search it saved would have come to the same verdict.
    monkeypatch.setattr(pairing_module, "guess_may_verify", lambda *args: True)
    assert not score_pair(original, strip, 0).verified and searched
    # A quarter cut in its own colours shows no more than a guess may: searched, and a duplicate.
    quarter_cut = _hash_apart(_with_few_keypoints(_features(smooth.crop((0, 0, 480, 400))), 0), original, 8)
    assert guess_may_verify(original, quarter_cut, 0)
    monkeypatch.setattr(pairing_module, "guess_may_verify", guess_may_verify)
    searched.clear()
    assert score_pair(original, quarter_cut, 0).verified and searched


def test_an_overlay_left_out_of_the_affine_fits_is_masked_where_the_estimate_puts_it_in_the_fitted_picture(monkeypatch):
    """ECC's mask marks valid pixels of the picture it warps (A); the overlay is found in B's
    frame. B is a crop of A, another shape: a mask of B's shape made each affine fit fail."""
    masks: list[tuple[tuple[int, ...], np.ndarray | None]] = []  # (the warped picture's shape, its mask) of each affine fit
    real = cv2.findTransformECC

    def recorded(template, image, warp, motion, criteria, mask, *rest):
        if motion == cv2.MOTION_AFFINE:
            masks.append((image.shape, mask))
        return real(template, image, warp, motion, criteria, mask, *rest)

    monkeypatch.setattr(cv2, "findTransformECC", recorded)
    noise = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 256, (120, 160)).astype(np.float32), (0, 0), 5)
    a_view = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    b_view = a_view[20:100, 40:160].copy()  # B -> A: 40 across, 20 down
    overlay = np.zeros(b_view.shape, dtype=bool)
    overlay[10:30, 10:50] = True
    b_view[overlay] = 255  # a caption's block
    estimate = np.array([[1, 0, 42], [0, 1, 19]], dtype=np.float32)

    refined = alignment.refine(a_view, b_view, estimate, ignore=overlay)

    full_size = [mask for shape, mask in masks if shape == a_view.shape]
    assert masks and all(mask is not None and mask.shape == shape for shape, mask in masks)
    assert len(full_size) == 1 and full_size[0] is not None
    left_out = full_size[0] == 0
    assert left_out[31:47, 54:90].all()  # within the caption, carried 42 across and 19 down
    assert not left_out[:27].any() and not left_out[:, :50].any() and not left_out[51:].any()
    assert np.abs(refined - np.array([[1, 0, 40], [0, 1, 20]])).max() < 0.5


def test_an_affine_fit_far_from_a_similarity_at_half_size_is_not_refined_at_full_size(monkeypatch):
    import cv2

    from dupe_scanner.analysis.verify import alignment, full_frame
    from dupe_scanner.analysis.verify.relation import views

    sizes: list[tuple[int, int]] = []  # the image size of each affine ECC fit
    real = cv2.findTransformECC

    def recorded(template, image, warp, motion, *args):
        if motion == cv2.MOTION_AFFINE:
            sizes.append(image.shape)
        return real(template, image, warp, motion, *args)

    monkeypatch.setattr(cv2, "findTransformECC", recorded)
    original = _features(photo(16))
    brighter = _features(photo(16).point(lambda level: min(255, int(level * 1.2))))
    stranger = _features(photo(17).resize((640, 300)))  # another shape: the estimate stretches it

    for other, refined_at_full_size in ((brighter, True), (stranger, False)):
        sizes.clear()
        relation = full_frame(original, other, 0)
        a_view, b_view = views(original, other, relation)
        matrix = alignment.refine(a_view, b_view, relation.matrix)
        assert sizes[0] != a_view.shape  # the half-size fit, always
        assert (a_view.shape in sizes) is refined_at_full_size
        assert bool(alignment.shape_error(matrix[:, :2].astype(np.float64))[0] <= alignment.MAX_SHAPE_ERROR) is refined_at_full_size


def test_a_stretch_is_measured_whatever_either_image_is_turned_by():
    from dupe_scanner.analysis.verify.alignment import shape_error, stretch

    def turn(degrees: float) -> np.ndarray:
        angle = np.radians(degrees)
        return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def as_map(linear: np.ndarray) -> np.ndarray:
        return np.hstack([linear, [[3.0], [-2.0]]])

    assert stretch(as_map(1.7 * turn(90))) == pytest.approx(0.0, abs=1e-12)  # a similarity: no stretch
    wide = np.diag([1.1, 1.0])  # two whole frames of other aspects, one on the other
    assert stretch(as_map(wide)) == pytest.approx(shape_error(wide)[0])
    for degrees in (-20, -3, 0.5, 7, 33):
        # Refining by a turn and a shift (the Euclidean refit) can never bring the map within
        # a similarity's shape error: the stretch is a floor under it.
        assert stretch(as_map(turn(degrees) @ wide @ turn(-2 * degrees))) == pytest.approx(stretch(as_map(wide)))
        assert shape_error(wide @ turn(degrees))[0] >= stretch(as_map(wide)) - 1e-12


def test_a_textured_pair_the_keypoints_relate_from_one_side_only_is_not_taken_for_strangers(monkeypatch):
    """The fit matches each of B's points to its nearest in A: it can relate a pair one way only
    (a large crop, asked from the crop's side). Either way is enough to align the pair."""
    import dupe_scanner.analysis.pairing as pairing
    from dupe_scanner.analysis.verify import from_keypoints

    aligned = _recording(monkeypatch, "verify")
    first = _features(photo(14))
    second = _hash_apart(_features(photo(15)), first, 16)
    assert from_keypoints(first, second) is None and from_keypoints(second, first) is not None
    assert pairing.textured(first) and pairing.textured(second)
    assert not pairing.textured_strangers(first, second, from_keypoints(first, second))
    assert score_pair(first, second, None) != pairing.NO_EVIDENCE and aligned


def test_a_crop_the_keypoints_relate_from_its_originals_side_only_scores_alike_whichever_side_asks():
    """From the crop's side the original's points outside the crop match at random and swamp the
    fit; which side asks is whichever picture the index finished last, so it must not matter."""
    from dupe_scanner.analysis.verify import from_keypoints, hash_distance

    picture = photo(11)
    original = _features(picture)
    crop = _hash_apart(_features(picture.crop((0, 0, 384, 264))), original, 22)  # 60 % of each side
    assert from_keypoints(crop, original) is None and from_keypoints(original, crop) is not None
    assert hash_distance(crop, original) > EVIDENCE_HASH_DISTANCE  # only the keypoints relate them
    asked_by_the_crop, asked_by_the_original = score_pair(crop, original, None), score_pair(original, crop, None)
    assert asked_by_the_crop.verified and asked_by_the_original.verified
    assert asked_by_the_crop.score == asked_by_the_original.score


def _waves(seed: int, size: tuple[int, int]) -> Image.Image:
    """Soft colour waves with no keypoints at all: a smooth wallpaper."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [
        np.sin(x * rng.uniform(3, 12) + y * rng.uniform(-6, 6) + rng.uniform(0, 6)) * 70 + 128 + np.sin(y * rng.uniform(2, 9)) * 30
        for _ in range(3)
    ]
    return Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8))


def test_a_crop_of_a_smooth_picture_is_found_from_either_side():
    """The alignment fits the second picture into the first: from the crop's side its original
    sticks out of the crop's frame, and the fit stops short of nesting the two."""
    from dupe_scanner.analysis.pairing import _score_from

    original = _waves(3, (640, 300))
    crop = original.crop((0, 0, 576, 270))  # the corner 10 % of each side away
    a, b = _features(crop), _features(original)
    assert len(a.descriptors) == len(b.descriptors) == 0  # nothing for the keypoint fit
    from_the_crop = _score_from(a, b, None)
    assert not from_the_crop.verified and from_the_crop.unnested
    assert _score_from(b, a, None).verified
    assert score_pair(a, b, None).verified and score_pair(b, a, None).verified


def test_a_pair_proposed_twice_is_verified_once_with_the_hashs_orientation_hint():
    from dupe_scanner.analysis.candidates import NO_ORIENTATION, Candidates

    proposed = np.array([[5, 2, 3], [2, 5, NO_ORIENTATION], [1, 0, NO_ORIENTATION], [5, 2, NO_ORIENTATION]])  # the hash's first
    candidates = Candidates.of(proposed, image_count=10)
    keys = [f"key{n}" for n in range(10)]
    assert len(candidates) == 2
    assert [pair for batch in candidates.batches(keys, 1) for pair in batch] == [("key1", "key0", None), ("key5", "key2", 3)]


def test_a_verification_compares_the_pictures_once_for_each_pixel_map_it_judges(monkeypatch):
    # A failed refinement keeps its estimate, and the overlay check looks at that estimate
    # too: each map's comparison is made once, however many steps ask for it.
    import dupe_scanner.analysis.verify.verdict as verdict_module

    maps: list[bytes] = []
    real = verdict_module.comparison.overlap

    def recorded(a_view, b_view, matrix):
        maps.append(np.asarray(matrix, np.float32).tobytes())
        return real(a_view, b_view, matrix)

    monkeypatch.setattr(verdict_module.comparison, "overlap", recorded)
    first, second = _features(_night_sky(8, (512, 512))), _features(_night_sky(108, (640, 400)))
    assert not score_pair(first, second, 0).verified
    assert maps and len(maps) == len(set(maps))


def _similarity(scale: float, degrees: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.radians(degrees)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([linear, np.array(shift, dtype=np.float64)[:, None]])


def test_no_similarity_a_refinement_may_keep_lies_within_reach_of_an_estimate_turned_beyond_it():
    """``turned_beyond_reach`` lets a keypoint estimate go unaligned: no map within the
    refinement's drift limit of it may be a scale times a quarter turn, not even the one
    nearest it, bent by the shape error a similarity may show towards the estimate."""
    from dupe_scanner.analysis.verify.alignment import MAX_REFINE_DRIFT, MAX_SHAPE_ERROR, shape_error, turned_beyond_reach

    rng = np.random.default_rng(7)
    a_shape, b_shape = (120, 160), (90, 160)
    height, width = b_shape
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], np.float64)
    limit = MAX_REFINE_DRIFT * max(a_shape)
    flagged = within_reach = 0
    for _ in range(4000):
        estimate = _similarity(rng.uniform(0.3, 2.5), rng.uniform(-180, 180), (rng.uniform(-50, 150), rng.uniform(-50, 150)))
        linear = estimate[:, :2]
        nearest_reach = np.inf
        for quarter in range(4):
            turn = _similarity(1.0, 90.0 * quarter, (0, 0))[:, :2]
            scale = max(1e-6, float(np.trace(turn.T @ linear)) / 2)
            bend = linear - scale * turn  # towards the estimate, as far as the shape error allows
            bend *= min(1.0, 0.999 * MAX_SHAPE_ERROR * scale * np.sqrt(2) / max(np.linalg.norm(bend), 1e-12))
            candidate_linear = scale * turn + bend
            assert shape_error(candidate_linear)[0] <= MAX_SHAPE_ERROR + 1e-9
            centre = np.array([width / 2, height / 2, 1.0])
            shift = estimate @ centre - candidate_linear @ centre[:2]  # the frame's centre kept where it was
            candidate = np.hstack([candidate_linear, shift[:, None]])
            nearest_reach = min(nearest_reach, float(np.abs(corners @ candidate.T - corners @ estimate.T).max()))
        if turned_beyond_reach(estimate.astype(np.float32), a_shape, b_shape):
            flagged += 1
            assert nearest_reach > limit
        elif nearest_reach <= limit:
            within_reach += 1
    assert flagged > 1000 and within_reach > 500


def test_strangers_keypoints_relate_at_a_slant_are_judged_without_an_alignment(monkeypatch):
    from dupe_scanner.analysis.verify import Relation, verify

    refined = _recording_refinements(monkeypatch)
    first, stranger = _features(photo(16)), _features(photo(17))
    height, width = stranger.thumb.shape
    centre = np.array([width / 2, height / 2])
    for degrees, aligned in ((30.0, False), (2.0, True)):  # a slight slant may be refined away; a wide one may not
        refined.clear()
        linear = _similarity(1.0, degrees, (0, 0))[:, :2]
        relation = Relation(0, False, np.hstack([linear, (centre - linear @ centre)[:, None]]).astype(np.float32))
        verdict = verify(first, stranger, relation)
        assert not verdict.verified
        assert bool(refined) is aligned
        if not aligned:
            assert "not a similarity" in verdict.reason


def clustered_points(pictures: int, seed: int = 3) -> list[np.ndarray]:
    """``pictures`` sets of 160 descriptors around one of 12 regions of descriptor space, as real ones crowd together."""
    rng = np.random.default_rng(seed)
    regions = rng.integers(0, 256, (12, 32), dtype=np.uint8)
    return [regions[rng.integers(12)] ^ np.packbits(rng.random((160, 256)) < 0.06, axis=1) for _ in range(pictures)]


def test_descriptors_searched_together_in_the_order_of_their_cells_find_what_each_finds_alone(monkeypatch):
    import dupe_scanner.analysis.cell_order as cell_order
    from dupe_scanner.analysis.candidates import IVF_ABOVE, PointsInMemory

    monkeypatch.setattr(cell_order, "SEARCH_BATCH", 500)
    stored = clustered_points(IVF_ABOVE // 160 + 20)  # inverted lists
    points = PointsInMemory.of(stored)
    queries = np.ascontiguousarray(np.concatenate(clustered_points(30, seed=4)))
    first_cells: list[np.ndarray] = []
    search = points.search

    def noting(descriptors, k, cells=None, span=None):
        first_cells.append(cells[1][:, 0])
        return search(descriptors, k, cells, span)

    monkeypatch.setattr(points, "search", noting)

    with ThreadPoolExecutor(max_workers=2) as pool:
        together = cell_order.search_together(points, queries, 32, pool)
    alone = search(queries, 32)

    assert np.array_equal(together.of(0, len(queries))[0], np.minimum(alone[0], 255)) and np.array_equal(together.of(0, len(queries))[1], alone[1])
    assert len(first_cells) == -(-len(queries) // 500)
    ordered = np.concatenate(sorted(first_cells, key=lambda cells: cells[0]))
    assert (np.diff(ordered) >= 0).all()  # each batch a run of cells, the batches one after the other


def test_descriptors_searched_together_a_span_of_cells_at_a_time_find_what_each_finds_alone_each_span_given_back_before_the_next(monkeypatch):
    import dupe_scanner.analysis.cell_order as cell_order
    from dupe_scanner.analysis.candidates import IVF_ABOVE, PointsInMemory

    monkeypatch.setattr(cell_order, "SEARCH_BATCH", 500)
    points = PointsInMemory.of(clustered_points(IVF_ABOVE // 160 + 20))
    queries = np.ascontiguousarray(np.concatenate(clustered_points(30, seed=4)))
    cells = int(points.index.nlist)
    spans = [(0, cells // 3), (cells // 3, cells // 2), (cells // 2, cells)]
    events: list[tuple[str, tuple[int, int] | None]] = []
    search = points.search

    def noting(descriptors, k, found_cells=None, span=None):
        events.append(("searched", span))
        assert span is not None and ((found_cells[1] >= span[0]) & (found_cells[1] < span[1])).any(axis=1).all()  # each has a cell there
        return search(descriptors, k, found_cells, span)

    monkeypatch.setattr(points, "search", noting)
    monkeypatch.setattr(points, "spans", lambda: spans)
    monkeypatch.setattr(points, "release", lambda span: events.append(("given back", span)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        together = cell_order.search_together(points, queries, 32, pool)
    alone = search(queries, 32)

    distances, rows = together.of(0, len(queries))
    assert np.array_equal(distances, np.minimum(alone[0], 255))
    before_the_last = distances < distances[:, -1:]  # points tied at the last distance may be other ones, as in any search in spans
    assert np.array_equal(points_before_the_last(distances, rows, before_the_last), points_before_the_last(distances, alone[1], before_the_last))
    given_back = [at for at, (what, _) in enumerate(events) if what == "given back"]
    assert [events[at][1] for at in given_back] == spans
    for span, (start, end) in zip(spans, zip([-1, *given_back], given_back, strict=False), strict=True):
        searches = events[start + 1 : end]  # between the span before's release and its own: its searches, all of them
        assert searches and all(event == ("searched", span) for event in searches)


def test_keypoint_candidates_are_the_same_however_many_descriptors_are_searched_together(monkeypatch):
    import dupe_scanner.analysis.candidates as candidates
    from dupe_scanner.analysis.candidates import IVF_ABOVE, PointsInMemory, keypoint_candidates

    stored = clustered_points(IVF_ABOVE // 160 + 20)
    rng = np.random.default_rng(5)
    copies = {row: [stored[row] ^ (rng.random((160, 32)) < 0.01).astype(np.uint8)] for row in range(40)}
    points = PointsInMemory.of([*stored, *(sets[0] for sets in copies.values())])
    queries = {len(stored) + n: sets for n, sets in enumerate(copies.values())}

    monkeypatch.setattr(candidates, "QUERY_BATCH", 3)  # votes counted 3 sets at a time
    monkeypatch.setattr(candidates, "SEARCHED_TOGETHER", 1)  # a set at a time
    one_by_one = keypoint_candidates(points, len(stored) + 40, queries, threads=2)
    monkeypatch.setattr(candidates, "SEARCHED_TOGETHER", 160 * 7)  # runs of 7 sets
    in_runs = keypoint_candidates(points, len(stored) + 40, queries, threads=2)
    monkeypatch.setattr(candidates, "SEARCHED_TOGETHER", 10**9)
    all_at_once = keypoint_candidates(points, len(stored) + 40, queries, threads=2)

    assert {(len(stored) + n, n) for n in range(40)} <= set(map(tuple, all_at_once[:, :2].tolist()))  # each copy finds its original
    assert np.array_equal(one_by_one, all_at_once) and np.array_equal(in_runs, all_at_once)


def points_before_the_last(distances: np.ndarray, rows: np.ndarray, before_the_last: np.ndarray) -> np.ndarray:
    """Each line's (distance, row) pairs before its last distance, as one sorted number each
    (equally near points come in either order)."""
    return np.sort(np.where(before_the_last, distances.astype(np.int64) << 32 | rows, np.iinfo(np.int64).max), axis=1)
