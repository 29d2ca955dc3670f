"""The embedded backend end to end on real files and a real SQLite state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps
from sqlalchemy import create_engine, select, update

from dupe_scanner.analysis.features import ANALYSER
from dupe_scanner.backends.embedded import EmbeddedBackend, _rows_among, _rows_in_order
from dupe_scanner.errors import FileVanished, UnreadableImage
from dupe_scanner.store.schema import features
from tests.backend_helpers import verified_by
from tests.disks import fill


def photo(seed: int, size: tuple[int, int] = (640, 440)) -> Image.Image:
    """A photo-like picture: smooth light, many overlapping shapes, slight blur and sensor noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    light = np.stack([np.sin(x * rng.uniform(2, 6) + rng.uniform(0, 6)) * 60 + 120 + y * rng.uniform(-80, 80) for _ in range(3)], -1)
    image = Image.fromarray(np.clip(light, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(45):
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(8, width // 6)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = [float(v) for v in (cx - r, cy - r * rng.uniform(0.3, 1.5), cx + r, cy + r)]  # Pillow reads them as doubles
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 5, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def open_engine(path: Path):
    try:
        from dupe_scanner.store.database import open_state
    except ImportError:  # pragma: no cover - before the store module existed
        from dupe_scanner.store.schema import metadata

        engine = create_engine(f"sqlite:///{path}")
        metadata.create_all(engine)
        return engine
    return open_state(path)


@pytest.fixture
def backend(tmp_path):
    engine = open_engine(tmp_path / "state.db")
    backend = EmbeddedBackend(engine, workers=2, max_image_pixels=50_000_000)
    yield backend
    backend.close()
    engine.dispose()


def exif_rotated(image: Image.Image, path: Path) -> None:
    """Store the pixels turned a quarter, with an EXIF Orientation tag that shows them upright."""
    stored = image.transpose(Image.Transpose.ROTATE_90)  # displayed upright by orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=92, exif=exif)


def variants(original: Image.Image, folder: Path, name: str) -> list[Path]:
    copies = {
        f"{name}.jpg": lambda p: original.save(p, quality=92),
        f"{name}-small.png": lambda p: original.resize((original.width // 2, original.height // 2), Image.Resampling.LANCZOS).save(p),
        f"{name}-q40.jpg": lambda p: original.save(p, quality=40),
        f"{name}-bright.webp": lambda p: ImageEnhance.Brightness(original).enhance(1.3).save(p, quality=90),
        f"{name}-grey.jpg": lambda p: original.convert("L").save(p, quality=90),
        f"{name}-rot90.jpg": lambda p: original.transpose(Image.Transpose.ROTATE_90).save(p, quality=90),
        f"{name}-mirror.tiff": lambda p: ImageOps.mirror(original).save(p),
        f"{name}-exif.jpg": lambda p: exif_rotated(original, p),
        f"{name}-crop.jpg": lambda p: original.crop((int(original.width * 0.2), int(original.height * 0.1), *original.size)).save(p, quality=90),
    }
    paths = []
    for file_name, write in copies.items():
        path = folder / file_name
        write(path)
        paths.append(path)
    return paths


def index_all(backend: EmbeddedBackend, paths: list[Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as threads:  # the indexer calls from several threads
        infos = list(threads.map(lambda p: backend.index(p.name, p), paths))
    assert all(info.width > 0 and info.height > 0 for info in infos)
    backend.commit()


def matches(backend: EmbeddedBackend, changed, threshold: float = 0.6) -> list:
    """The pairs ``find_pairs`` reports at ``threshold`` or above (it also reports rejected candidates)."""
    return [pair for pair in backend.find_pairs(changed, threshold) if pair.score >= threshold]


def test_every_copy_pairs_with_its_original_and_nothing_else(backend, tmp_path):
    paths = variants(photo(1), tmp_path, "alpha") + variants(photo(2), tmp_path, "beta") + variants(photo(3), tmp_path, "gamma")
    index_all(backend, paths)
    found = {(pair.first, pair.second): pair.score for pair in matches(backend, None)}
    for pair in found:
        assert pair[0].split("-")[0].split(".")[0] == pair[1].split("-")[0].split(".")[0], f"false pair {pair}"
    for name in ("alpha", "beta", "gamma"):
        for path in paths:
            if path.name.startswith(name) and path.name != f"{name}.jpg":
                key = tuple(sorted((f"{name}.jpg", path.name)))
                assert key in found, f"missed {key}"
                assert 0.6 <= found[key] <= 1.0


def test_scores_keep_flows_meaning(backend, tmp_path):
    original = photo(7)
    original.save(tmp_path / "a.png")
    original.save(tmp_path / "b.bmp")  # pixel-identical, other format
    original.resize((320, 220), Image.Resampling.LANCZOS).save(tmp_path / "c.jpg", quality=90)  # no visible change
    ImageEnhance.Color(original).enhance(0.3).save(tmp_path / "d.jpg", quality=90)  # visibly desaturated
    index_all(backend, [tmp_path / n for n in ("a.png", "b.bmp", "c.jpg", "d.jpg")])
    found = {(pair.first, pair.second): pair.score for pair in matches(backend, None)}
    assert found[("a.png", "b.bmp")] == 1.0
    assert 0.9 <= found[("a.png", "c.jpg")] < 1.0
    assert 0.6 <= found[("a.png", "d.jpg")] < 0.9


def test_other_shots_of_the_same_scene_are_not_exact_duplicates(backend, tmp_path):
    scene = photo(11, (900, 440))
    scene.crop((0, 0, 640, 440)).save(tmp_path / "frame1.jpg", quality=92)
    scene.crop((200, 0, 840, 440)).save(tmp_path / "frame2.jpg", quality=92)  # camera panned
    index_all(backend, [tmp_path / "frame1.jpg", tmp_path / "frame2.jpg"])
    assert matches(backend, None) == []


def test_rejected_candidates_are_reported_as_compared_and_different(backend, tmp_path):
    """Grouping must tell "compared and different" from "never compared"."""
    scene = photo(11, (900, 440))
    scene.crop((0, 0, 640, 440)).save(tmp_path / "frame1.jpg", quality=92)
    scene.crop((200, 0, 840, 440)).save(tmp_path / "frame2.jpg", quality=92)  # proposed: they share a strip
    index_all(backend, [tmp_path / "frame1.jpg", tmp_path / "frame2.jpg"])
    (pair,) = backend.find_pairs(None, 0.6)
    assert (pair.first, pair.second) == ("frame1.jpg", "frame2.jpg")
    assert pair.score < 0.5
    assert backend.compares_every_pair is False


def test_incremental_scan_only_reports_pairs_touching_changed(backend, tmp_path):
    paths = variants(photo(4), tmp_path, "delta")[:3] + variants(photo(5), tmp_path, "eps")[:3]
    index_all(backend, paths)
    pairs = list(matches(backend, {"eps.jpg"}))
    assert pairs and all("eps.jpg" in (pair.first, pair.second) for pair in pairs)
    assert list(matches(backend, set())) == []


def test_forget_clear_and_stale_versions(backend, tmp_path):
    paths = variants(photo(6), tmp_path, "zeta")[:3]
    index_all(backend, paths)
    assert backend.health().documents == 3
    assert backend.missing([p.name for p in paths] + ["never"]) == {"never"}
    with backend.engine.begin() as connection:
        connection.execute(update(features).where(features.c.hash == "zeta.jpg").values(analyser="embedded-old-0"))
    assert backend.stale_hashes() == {"zeta.jpg"}
    assert "zeta.jpg" in backend.missing(["zeta.jpg"])
    assert all("zeta.jpg" not in (p.first, p.second) for p in matches(backend, None))
    backend.index("zeta.jpg", paths[0])  # re-analysis replaces the stale row
    assert backend.stale_hashes() == set()
    backend.forget(["zeta.jpg"])
    with backend.engine.connect() as connection:
        assert set(connection.scalars(select(features.c.hash))) == {p.name for p in paths[1:]}
        assert set(connection.scalars(select(features.c.analyser))) == {ANALYSER}
    backend.clear()
    assert backend.health().documents == 0
    assert list(matches(backend, None)) == []


def test_unreadable_and_vanished_files(backend, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UnreadableImage):
        backend.index("broken", broken)
    with pytest.raises(FileVanished):
        backend.index("gone", tmp_path / "gone.jpg")
    photo(8).save(tmp_path / "fine.jpg")
    assert backend.index("fine", tmp_path / "fine.jpg").format == "JPEG"  # the pool survives failures
    assert backend.health().reachable


def test_contents_whose_features_were_lost_are_reported_outdated(tmp_path):
    from sqlalchemy import delete

    from dupe_scanner.backends.base import ImageInfo
    from dupe_scanner.store import contents as content_store
    from dupe_scanner.store.database import open_state, write_transaction
    from dupe_scanner.store.schema import features

    engine = open_state(tmp_path / "state.db")
    backend = EmbeddedBackend(engine, workers=1, max_image_pixels=10**8)
    try:
        path = tmp_path / "a.png"
        photo(1, (160, 120)).save(path)
        info = backend.index("a" * 64, path)
        with write_transaction(engine) as connection:
            content_store.record_content(connection, "a" * 64, info, 1.0)
            content_store.record_content(connection, "b" * 64, ImageInfo(1, 1, "PNG"), 1.0)  # never analysed here
        assert backend.outdated() == {"b" * 64}
        with write_transaction(engine) as connection:
            connection.execute(update(features).values(analyser="embedded-older-1"))
        assert backend.outdated() == {"a" * 64, "b" * 64}  # analysed by a version before this one
        with write_transaction(engine) as connection:
            connection.execute(update(features).values(analyser="embedded-zz-newer"))
        assert backend.outdated() == {"a" * 64, "b" * 64}  # or by one after it (a downgrade)
        with write_transaction(engine) as connection:
            connection.execute(delete(features))
        assert backend.outdated() == {"a" * 64, "b" * 64}
    finally:
        backend.close()


def test_a_fingerprint_cut_short_is_left_out_of_the_scan_and_analysed_again(backend, tmp_path, caplog):
    paths = variants(photo(9), tmp_path, "eta")[:3]
    index_all(backend, paths)
    with backend.engine.begin() as connection:
        whole = connection.scalar(select(features.c.data).where(features.c.hash == "eta-q40.jpg"))
        connection.execute(update(features).where(features.c.hash == "eta-q40.jpg").values(data=whole[: len(whole) // 3]))

    with caplog.at_level("WARNING"):
        pairs = matches(backend, None)

    assert {(pair.first, pair.second) for pair in pairs} == {("eta-small.png", "eta.jpg")}
    assert "1 stored fingerprints were damaged" in caplog.text
    assert backend.missing(["eta-q40.jpg"]) == {"eta-q40.jpg"}  # so the next index run analyses it again


def test_idle_worker_processes_are_released_and_come_back_on_demand(tmp_path, monkeypatch):
    import time

    import dupe_scanner.backends.embedded as embedded
    from dupe_scanner.store.database import open_state

    monkeypatch.setattr(embedded, "IDLE_RELEASE_SECONDS", 0.5)
    backend = EmbeddedBackend(open_state(tmp_path / "state.db"), workers=1, max_image_pixels=10**8)
    try:
        path = tmp_path / "a.png"
        photo(2, (160, 120)).save(path)
        backend.index("a" * 64, path)
        assert backend._pool is not None
        workers = list(backend._pool._processes.values())
        assert workers and all(process.is_alive() for process in workers)
        deadline = time.monotonic() + 10
        while backend._pool is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert backend._pool is None
        for process in workers:
            process.join(timeout=10)
            assert not process.is_alive()
        assert backend.index("a" * 64, path).width == 160
    finally:
        backend.close()


@pytest.mark.parametrize("large_from, workers_kept", [(10, True), (9, False)], ids=["small search", "large search"])
def test_idle_workers_are_stopped_before_a_large_search_and_kept_for_a_small_one(backend, tmp_path, monkeypatch, large_from, workers_kept):
    import dupe_scanner.backends.embedded as embedded

    monkeypatch.setattr(embedded, "SEARCH_WITHOUT_WORKERS", large_from)  # the search compares nine pictures
    paths = variants(photo(4), tmp_path, "delta")
    index_all(backend, paths)
    indexing_workers = backend._pool
    assert indexing_workers is not None

    assert matches(backend, None)  # verified by workers again
    assert (backend._pool is indexing_workers) == workers_kept and backend._pool is not None


@pytest.mark.parametrize("order", ["sorted", "any order"])
def test_the_kept_keypoint_base_finds_each_of_its_pictures_now_and_the_new_ones(order):
    from dupe_scanner.backends.keypoint_store import _rows_of

    base = np.array([b"a" * 64, b"b" * 64, b"c" * 64], dtype="S64")  # as written: sorted
    keys = ["a" * 64, "c" * 64, "d" * 64] if order == "sorted" else ["d" * 64, "c" * 64, "a" * 64]
    rows, fresh = _rows_of(base, keys)
    expected_rows = [0, -1, 1] if order == "sorted" else [2, -1, 1]
    assert rows.tolist() == expected_rows and [keys[row] for row in fresh] == ["d" * 64]  # b is gone, d is new
    assert _rows_of(base, [])[0].tolist() == [-1, -1, -1] and _rows_of(np.array([], dtype="S64"), keys)[1] == [0, 1, 2]


def test_the_keypoint_index_is_kept_between_scans_and_takes_in_new_and_gone_pictures(tmp_path, monkeypatch):
    import dupe_scanner.analysis.candidates as candidates
    from dupe_scanner.analysis.candidates import keypoint_candidates, pairs_of
    from dupe_scanner.backends.keypoint_store import KeypointStore

    monkeypatch.setattr(candidates, "IVF_ABOVE", 2000)  # an inverted-file index from 2,000 points on
    rng = np.random.default_rng(3)
    pictures = {f"{n:064x}": rng.integers(0, 256, (160, 32), dtype=np.uint8) for n in range(40)}
    copy_of = lambda key: pictures[key] ^ (rng.random((160, 32)) < 0.01).astype(np.uint8)  # noqa: E731 (a few bits off)
    loaded: list[str] = []

    def load(keys):
        loaded.extend(keys)
        return [pictures[key] for key in keys]

    def scan(keys, query):
        points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)  # a new process each time
        row = keys.index(query)
        return {(keys[a], keys[b]) for a, b in pairs_of(keypoint_candidates(points, len(keys), {row: [pictures[query]]}))}

    keys = sorted(pictures)
    scan(keys, keys[0])
    kept = sorted(path.name for path in tmp_path.iterdir())
    assert len(kept) == 2 and len(loaded) == 40  # the keys and the index itself

    loaded.clear()
    pictures["f" * 64] = copy_of(keys[5])  # a new picture, a copy of an old one
    del pictures[keys[7]]  # and one gone
    keys = sorted(pictures)
    assert scan(keys, "f" * 64) == {("f" * 64, keys[5])}
    assert loaded == ["f" * 64] and sorted(path.name for path in tmp_path.iterdir()) == kept  # only the new one was read

    (tmp_path / "state.db.keypoints").write_bytes(b"damaged")
    assert scan(keys, "f" * 64) == {("f" * 64, keys[5])}
    assert len(loaded) == 1 + len(keys)  # built again from every picture


def test_a_kept_keypoint_index_in_the_earlier_kind_of_file_is_used_not_built_again(tmp_path, monkeypatch):
    # Before the kept arrays were .npy records, the keys were an np.savez archive: an upgrade
    # must not make a large library build its keypoint base again (15 minutes at a million).
    import dupe_scanner.analysis.candidates as candidates
    from dupe_scanner.analysis.candidates import keypoint_candidates, pairs_of
    from dupe_scanner.backends import kept_arrays
    from dupe_scanner.backends.keypoint_store import KeypointStore

    monkeypatch.setattr(candidates, "IVF_ABOVE", 2000)
    rng = np.random.default_rng(4)
    pictures = {f"{n:064x}": rng.integers(0, 256, (160, 32), dtype=np.uint8) for n in range(40)}
    keys = sorted(pictures)
    loaded: list[str] = []

    def load(some):
        loaded.extend(some)
        return [pictures[key] for key in some]

    keys_file = tmp_path / "state.db.keypoints"
    KeypointStore(keys_file, "test-analyser").points(keys, load)
    np.savez(kept_arrays.legacy_file(keys_file), **kept_arrays.read_arrays(keys_file))  # type: ignore[arg-type]
    keys_file.unlink()  # as the version before left it
    loaded.clear()
    pictures["f" * 64] = pictures[keys[5]] ^ (rng.random((160, 32)) < 0.01).astype(np.uint8)  # a new copy of an old picture
    keys = sorted(pictures)
    points = KeypointStore(keys_file, "test-analyser").points(keys, load)
    assert loaded == ["f" * 64], "only the new picture is read: the kept index is used"
    assert keys_file.exists() and not kept_arrays.legacy_file(keys_file).exists(), "written as this version writes it, once read"
    query = {keys.index("f" * 64): [pictures["f" * 64]]}
    assert {(keys[a], keys[b]) for a, b in pairs_of(keypoint_candidates(points, len(keys), query))} == {("f" * 64, keys[5])}


def test_the_kept_keypoint_base_is_searched_without_faiss_starting_prefetch_threads(tmp_path, monkeypatch):
    # faiss reads the memory-mapped lists as OnDiskInvertedLists, which by default starts 32
    # threads before each search to touch the lists it will probe: twice the search's CPU.
    import faiss

    import dupe_scanner.analysis.candidates as candidates
    from dupe_scanner.backends.keypoint_store import KeypointStore

    monkeypatch.setattr(candidates, "IVF_ABOVE", 2000)
    rng = np.random.default_rng(5)
    pictures = {f"{n:064x}": rng.integers(0, 256, (160, 32), dtype=np.uint8) for n in range(40)}
    keys = sorted(pictures)
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, lambda some: [pictures[key] for key in some])  # writes the base

    kept = store._read_kept()
    assert kept is not None and isinstance(kept.base.index, faiss.IndexBinaryIVF)
    lists = faiss.downcast_InvertedLists(kept.base.index.invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists) and lists.prefetch_nthread == 0
    assert kept.base.index.search(pictures[keys[3]][:1], 1)[1][0, 0] == 3 * 160  # the picture's first point


def test_the_pair_search_says_how_many_candidates_it_has_verified(backend, tmp_path):
    paths = variants(photo(7), tmp_path, "theta")[:4]
    index_all(backend, paths)
    told: list[tuple[str, int, int]] = []
    pairs = list(backend.find_pairs(None, 0.6, lambda step, done, total: told.append((step, done, total))))
    assert told and {step for step, _, _ in told} == {"verifying candidate pairs"}
    assert [done for _, done, _ in told] == sorted(done for _, done, _ in told)
    assert told[-1][1:] == (len(pairs), len(pairs))


def test_a_family_of_copies_is_found_whole_when_each_candidate_must_be_earned_by_the_one_before(backend, tmp_path, monkeypatch):
    from dupe_scanner.analysis import candidates

    paths = variants(photo(11), tmp_path, "iota") + variants(photo(12), tmp_path, "kappa")
    index_all(backend, paths)
    everything_at_once = {(pair.first, pair.second) for pair in matches(backend, None)}
    monkeypatch.setattr(candidates, "NEAR_BITS", -1)  # every hash neighbour is far...
    monkeypatch.setattr(candidates, "FAR_BLOCK", 1)  # ...and asked one at a time,
    monkeypatch.setattr(candidates, "KEYPOINT_BLOCK", 1)  # as is every keypoint candidate
    assert {(pair.first, pair.second) for pair in matches(backend, None)} == everything_at_once


def test_a_scan_verifies_a_resized_copy_against_its_original_and_takes_the_originals_verdicts(backend, tmp_path):
    from dupe_scanner.analysis import twins

    original = photo(21)
    written = {
        "a-original.png": original,
        "b-crop.png": original.crop((80, 40, *original.size)),
        "c-resized.png": original.resize((original.width // 2, original.height // 2), Image.Resampling.LANCZOS),
    }
    for name, picture in written.items():  # one at a time: each is analysed after the one before
        picture.save(tmp_path / name)
        index_all(backend, [tmp_path / name])
    verified = verified_by(backend)
    found = {(pair.first, pair.second): pair.score for pair in backend.find_pairs(None, 0.6)}
    assert found[("a-original.png", "c-resized.png")] >= twins.TWIN_SCORE
    # The resized copy came last: its pair with the crop is the original's.
    assert found[("b-crop.png", "c-resized.png")] == found[("a-original.png", "b-crop.png")] >= 0.6
    assert sorted(verified) == [("b-crop.png", "a-original.png"), ("c-resized.png", "a-original.png")]


@pytest.mark.parametrize("first_block_holds_a_copy", [True, False])
def test_a_querys_next_block_of_far_hash_neighbours_is_asked_only_when_its_block_before_held_a_copy(backend, monkeypatch, first_block_holds_a_copy):
    from dupe_scanner.analysis import candidates
    from dupe_scanner.values import ScoredPair

    monkeypatch.setattr(candidates, "NEAR_BITS", -1)
    monkeypatch.setattr(candidates, "FAR_BLOCK", 2)
    query = np.uint64(0xF0F0_1234_5678_9ABC)
    neighbours = [query ^ (np.uint64(1) << np.uint64(bit)) for bit in (3, 17, 29, 41, 53)]  # one bit apart each
    hashes = np.repeat(np.array([*neighbours, query], dtype=np.uint64)[:, None], 8, axis=1)
    keys = [f"older{row}" for row in range(5)] + ["query"]
    proposed = candidates.propose(keys, hashes, np.array([5]), age=np.arange(6))
    copy = "older0" if first_block_holds_a_copy else "older4"
    asked: list[set[str]] = []

    def verify(batches, total, progress=None):
        pairs = [pair for batch in batches for pair in batch]
        asked.append({key for pair in pairs for key in pair[:2]} - {"query"})
        for first, second, _ in pairs:
            yield ScoredPair.of(first, second, 0.8 if copy in (first, second) else 0.1)

    monkeypatch.setattr(backend, "_verify", verify)
    verdicts = list(backend._verify_as_earned(proposed, keys, None))
    # Block 0 is asked in two rounds: the query's twin candidate (its nearest, oldest) first.
    if first_block_holds_a_copy:
        assert asked == [{"older0"}, {"older1"}, {"older2", "older3"}]  # the second block held none: no third
    else:
        assert asked == [{"older0"}, {"older1"}]
    assert len(verdicts) == sum(len(block) for block in asked)


def test_the_keypoint_index_reads_a_large_library_a_chunk_at_a_time_and_finds_what_one_built_at_once_finds(tmp_path, monkeypatch):
    import dupe_scanner.analysis.candidates as candidates
    import dupe_scanner.backends.keypoint_store as keypoint_store
    from dupe_scanner.analysis.candidates import PointsInMemory, keypoint_candidates, pairs_of
    from dupe_scanner.backends.keypoint_store import KeypointStore

    monkeypatch.setattr(candidates, "IVF_ABOVE", 2000)
    monkeypatch.setattr(keypoint_store, "LOAD_CHUNK", 7)
    monkeypatch.setattr(keypoint_store, "SAMPLE_CONTENTS", 10)
    rng = np.random.default_rng(5)
    keys = [f"{n:064x}" for n in range(60)]
    pictures = {key: rng.integers(0, 256, (160, 32), dtype=np.uint8) for key in keys}
    for copy, original in ((keys[50], keys[3]), (keys[51], keys[30])):
        pictures[copy] = pictures[original] ^ (rng.random((160, 32)) < 0.01).astype(np.uint8)
    reads: list[int] = []

    def load(some):
        reads.append(len(some))
        return [pictures[key] for key in some]

    kept = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)
    assert max(reads) <= 10 and sum(reads) < 2 * len(keys)  # never the whole library at once

    queries = {row: [pictures[keys[row]]] for row in (50, 51)}
    at_once = PointsInMemory.of([pictures[key] for key in keys])
    found_kept, found_at_once = (pairs_of(keypoint_candidates(index, len(keys), queries)) for index in (kept, at_once))
    assert found_kept == found_at_once == [(50, 3), (51, 30)]


def a_library_in_shards(monkeypatch, size: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """``size`` pictures of 160 random points each, in a base built from shards of 1,000 points."""
    import dupe_scanner.analysis.candidates as candidates
    import dupe_scanner.backends.keypoint_store as keypoint_store

    monkeypatch.setattr(candidates, "IVF_ABOVE", 2000)
    monkeypatch.setattr(keypoint_store, "LOAD_CHUNK", 7)
    monkeypatch.setattr(keypoint_store, "SAMPLE_CONTENTS", 10)
    monkeypatch.setattr(keypoint_store, "SHARD_POINTS", 1000)
    monkeypatch.setattr(keypoint_store, "TRAINING_PER_CELL", 4)  # a library too large to train on all of it
    rng = np.random.default_rng(8)
    keys = [f"{n:064x}" for n in range(size)]
    return keys, {key: rng.integers(0, 256, (160, 32), dtype=np.uint8) for key in keys}


def searched_alike(kept, pictures: dict[str, np.ndarray], ties_at_the_end: bool = False) -> bool:
    """Whether ``kept`` finds for each picture's points what an index built at once in its cells
    finds; ``ties_at_the_end``: the points tied at the last distance found may be other ones,
    and points at one distance may come in another order."""
    from dupe_scanner.analysis.candidates import PointsInMemory

    at_once = PointsInMemory.of(list(pictures.values()), partition=lambda _database, _lists: kept.cells)
    queries = np.concatenate(list(pictures.values()))
    (distances, rows), (expected_distances, expected_rows) = kept.search(queries, 20), at_once.search(queries, 20)
    if not ties_at_the_end:
        return bool(np.array_equal(distances, expected_distances) and np.array_equal(rows, expected_rows))
    before_last = distances < distances[:, -1:]

    def found_before_last(distances: np.ndarray, rows: np.ndarray) -> np.ndarray:  # each line's (distance, row)s, in one order
        return np.sort(np.where(before_last, distances.astype(np.int64) << 32 | (rows + 1), -1), axis=1)

    same_before_last = np.array_equal(found_before_last(distances, rows), found_before_last(expected_distances, expected_rows))
    return bool(np.array_equal(distances, expected_distances) and same_before_last)


def test_a_large_keypoint_base_is_built_a_shard_at_a_time_and_written_from_them_and_searches_as_one_built_at_once(tmp_path, monkeypatch):
    import dupe_scanner.backends.ivf_file as ivf_file
    import dupe_scanner.backends.keypoint_store as keypoint_store
    from dupe_scanner.backends.keypoint_store import KeptPoints, KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 60)  # 9,600 points
    written_from: list[int] = []
    write = ivf_file.write_from_shards

    def write_counting(cells, shards, destination):
        written_from.append(len(shards))
        return write(cells, shards, destination)

    monkeypatch.setattr(ivf_file, "write_from_shards", write_counting)
    monkeypatch.setattr(keypoint_store, "_copy_shards", None)  # the lists are never gathered in memory

    kept = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, lambda some: [pictures[k] for k in some])

    assert written_from and written_from[0] >= 8  # a shard of 7 pictures' 1,120 points at a time
    assert isinstance(kept, KeptPoints)  # searched from its file
    assert searched_alike(kept, pictures)
    assert not list(tmp_path.glob("*.shard"))


@pytest.mark.parametrize("pictures_a_shard", [2000, 3], ids=["every list filled", "most lists empty"])
def test_an_index_written_from_its_shards_is_the_file_faiss_writes_for_its_lists_gathered_in_memory(tmp_path, monkeypatch, pictures_a_shard):
    import faiss

    import dupe_scanner.backends.ivf_file as ivf_file
    from dupe_scanner.analysis.candidates import inverted_lists_in, train_partition
    from dupe_scanner.backends.keypoint_store import _copy_shards

    rng = np.random.default_rng(10)
    cells = train_partition(rng.integers(0, 256, (10_000, 32), dtype=np.uint8), 64)
    shards = []
    for number in range(4):
        shard = inverted_lists_in(cells)
        shard.add(rng.integers(0, 256, (pictures_a_shard, 32), dtype=np.uint8))
        shards.append(tmp_path / f"{number}.shard")
        faiss.write_index_binary(shard, str(shards[-1]))
    in_memory = inverted_lists_in(cells)
    _copy_shards(in_memory, shards)
    faiss.write_index_binary(in_memory, str(tmp_path / "in-memory.ivf"))
    monkeypatch.setattr(ivf_file, "WRITE_BYTES", 4096)  # many writes, each a few lists

    assert ivf_file.write_from_shards(inverted_lists_in(cells), shards, tmp_path / "from-shards.ivf") == 4 * pictures_a_shard
    assert (tmp_path / "from-shards.ivf").read_bytes() == (tmp_path / "in-memory.ivf").read_bytes()


def test_a_shard_written_from_gives_back_its_pages_after_each_span_those_the_kernel_mapped_around_them_too(tmp_path, monkeypatch):
    import faiss

    import dupe_scanner.backends.ivf_file as ivf_file
    from dupe_scanner.analysis.candidates import inverted_lists_in

    rng = np.random.default_rng(11)
    cells = rng.integers(0, 256, (1024, 32), dtype=np.uint8)
    shard = inverted_lists_in(cells)
    shard.add(rng.integers(0, 256, (200_000, 32), dtype=np.uint8))  # 8 MB of lists, about 8 KB each
    faiss.write_index_binary(shard, str(tmp_path / "0.shard"))
    mapped = ivf_file._Shard(tmp_path / "0.shard", 32)
    seen = []
    for first in range(0, 1024, 8):  # spans of 8 lists, each read whole, then given back, as a write does
        end = first + 8
        seen.append(int(mapped.bytes[mapped.starts[first] : mapped.starts[end]].sum()))
        mapped.release(first, end)
        assert resident_bytes(tmp_path / "0.shard") <= 4 * 64 << 10, first  # the pages around the next span's first read at most
    mapped.close()


def test_an_index_is_written_from_more_shards_than_the_soft_limit_of_open_files_allows(tmp_path):
    import subprocess
    import sys

    script = """
import resource, sys
from pathlib import Path
import faiss, numpy as np
from dupe_scanner.analysis.candidates import inverted_lists_in
from dupe_scanner.backends import ivf_file

folder = Path(sys.argv[1])
rng = np.random.default_rng(12)
cells = rng.integers(0, 256, (16, 32), dtype=np.uint8)
shards = []
for number in range(300):
    shard = inverted_lists_in(cells)
    shard.add(rng.integers(0, 256, (10, 32), dtype=np.uint8))
    shards.append(folder / f"{number}.shard")
    faiss.write_index_binary(shard, str(shards[-1]))
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))  # as a service may start
print(ivf_file.write_from_shards(inverted_lists_in(cells), shards, folder / "base.ivf"))
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3000"]


def test_a_build_stopped_by_an_error_midway_leaves_no_shards_behind(tmp_path, monkeypatch):
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 30)  # shards of 7 pictures

    def load(some):
        if some[0] == keys[21]:  # the fourth shard's
            raise ValueError("a fingerprint that cannot be read")
        return [pictures[key] for key in some]

    with pytest.raises(ValueError, match="cannot be read"):
        KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)
    assert not list(tmp_path.iterdir())


def test_a_base_that_finds_no_room_once_its_shards_are_written_is_searched_in_memory_and_not_kept(tmp_path, monkeypatch, caplog):
    import errno

    import dupe_scanner.backends.ivf_file as ivf_file
    from dupe_scanner.analysis.candidates import PointsInMemory
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 30)

    def no_room(cells, shards, destination):
        destination.write_bytes(b"half an index")
        raise OSError(errno.ENOSPC, "No space left on device", str(destination))

    monkeypatch.setattr(ivf_file, "write_from_shards", no_room)
    points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, lambda some: [pictures[k] for k in some])

    assert isinstance(points, PointsInMemory) and "not kept for the next scan" in caplog.text and "No space left on device" in caplog.text
    cells = points.index.quantizer.reconstruct_n(0, points.index.nlist).astype(np.uint8)
    at_once = PointsInMemory.of(list(pictures.values()), partition=lambda _database, _lists: cells)
    queries = np.concatenate(list(pictures.values()))
    assert all(np.array_equal(found, expected) for found, expected in zip(points.search(queries, 20), at_once.search(queries, 20), strict=True))
    assert not list(tmp_path.iterdir())  # neither the shards nor the half-written base are left


def test_a_kept_base_too_large_to_hold_is_searched_a_span_of_cells_at_a_time_and_finds_what_a_search_of_every_cell_finds(tmp_path, monkeypatch):
    import dupe_scanner.backends.mapped_lists as mapped_lists
    from dupe_scanner.analysis.candidates import keypoint_candidates, pairs_of
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 60)  # 9,600 points in 392 cells: 384 KB of lists
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)  # writes the base
    new = copies_of(pictures, keys[:6], 1000, seed=9)
    everything = keys + new
    queries = {everything.index(key): [pictures[key]] for key in new}

    def searched(span_bytes: int):
        monkeypatch.setattr(mapped_lists, "SPAN_BYTES", span_bytes)
        points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(everything, load, queries=len(new))
        return points, pairs_of(keypoint_candidates(points, len(everything), queries))

    (held, found_held), (in_spans, found_in_spans) = searched(1 << 30), searched(32 << 10)

    assert len(held.spans()) == 1 and len(in_spans.spans()) >= 10
    assert found_in_spans == found_held == [(len(keys) + n, n) for n in range(6)]  # each copy finds its original
    assert searched_alike(in_spans, {key: pictures[key] for key in everything}, ties_at_the_end=True)


def test_a_span_is_searched_for_the_descriptors_with_a_nearest_cell_in_it_alone(tmp_path, monkeypatch):
    import faiss

    from dupe_scanner.backends.keypoint_store import KeypointStore, _searched_in_spans

    keys, pictures = a_library_in_shards(monkeypatch, 60)
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, lambda some: [pictures[key] for key in some])
    kept = store._read_kept()
    assert kept is not None and isinstance(kept.base.index, faiss.IndexBinaryIVF)
    base = kept.base.index
    queries = np.concatenate([pictures[key] for key in keys[:4]])
    cell_distances, nearest_cells = base.quantizer.search(queries, base.nprobe)
    spans = [(0, 100), (100, 101), (101, base.nlist)]
    asked: list[int] = []

    class Noting:  # the base, noting how many descriptors each span's search is given
        def search_preassigned(self, descriptors, k, cells, distances):
            assert (cells >= 0).any(axis=1).all()
            asked.append(len(descriptors))
            return base.search_preassigned(descriptors, k, cells, distances)

    noting: list = [Noting()]
    (distances, _ids), = _searched_in_spans(noting, queries, 8, nearest_cells, cell_distances, spans, [])

    with_a_cell_in = [int(((nearest_cells >= first) & (nearest_cells < end)).any(axis=1).sum()) for first, end in spans]
    assert asked == with_a_cell_in and asked[1] < len(queries)
    expected = base.search_preassigned(queries, 8, nearest_cells, cell_distances)
    assert np.array_equal(distances, expected[0])


def test_near_cells_are_numbered_together_so_a_span_of_cells_is_a_region_of_descriptor_space(monkeypatch):
    import dupe_scanner.backends.mapped_lists as mapped_lists

    monkeypatch.setattr(mapped_lists, "GROUPED_CELLS", 8)
    rng = np.random.default_rng(3)
    regions = rng.integers(0, 256, (6, 32), dtype=np.uint8)
    region_of = rng.permutation(np.repeat(np.arange(6), 40))  # 240 cells, the regions' shuffled
    flipped = np.packbits(rng.random((240, 256)) < 0.08, axis=1)  # about 20 bits of 256
    centres = regions[region_of] ^ flipped

    ordered = mapped_lists.near_cells_together(centres)

    assert sorted(map(bytes, ordered)) == sorted(map(bytes, centres))  # the same cells
    regions_in_order = [region_of[[bytes(c) for c in centres].index(bytes(cell))] for cell in ordered]
    assert 1 + np.count_nonzero(np.diff(regions_in_order)) == 6  # each region's cells one after the other


def test_a_base_that_may_be_searched_in_spans_numbers_its_cells_near_ones_together_and_a_smaller_one_keeps_them_as_trained(tmp_path, monkeypatch):
    import dupe_scanner.backends.keypoint_store as keypoint_store
    import dupe_scanner.backends.mapped_lists as mapped_lists
    from dupe_scanner.backends.keypoint_store import KeptPoints, KeypointStore

    keys, _ = a_library_in_shards(monkeypatch, 60)  # 9,600 points: 384 KB of lists
    monkeypatch.setattr(mapped_lists, "GROUPED_CELLS", 16)
    rng = np.random.default_rng(5)
    regions = rng.integers(0, 256, (4, 32), dtype=np.uint8)  # each picture's points lie around one of four
    pictures = {key: regions[rng.integers(4)] ^ np.packbits(rng.random((160, 256)) < 0.06, axis=1) for key in keys}
    load = lambda some: [pictures[key] for key in some]  # noqa: E731

    def never(centres):
        raise AssertionError("a base held whole keeps its cells' numbering")

    with monkeypatch.context() as held_whole:
        held_whole.setattr(keypoint_store, "near_cells_together", never)
        (tmp_path / "held").mkdir()
        assert isinstance(KeypointStore(tmp_path / "held" / "state.db.keypoints", "test-analyser").points(keys, load), KeptPoints)

    monkeypatch.setattr(mapped_lists, "SPAN_BYTES", 400 << 10)  # with a quarter more in segments, more than a search holds at once
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, load)
    kept = store._read_kept()
    assert kept is not None and kept.cells is not None
    distances = np.unpackbits(kept.cells[:, None, :] ^ regions[None, :, :], axis=2).sum(axis=2)
    regions_in_order = distances.argmin(axis=1)
    assert 1 + np.count_nonzero(np.diff(regions_in_order)) == 4  # each region's cells one after the other


def a_clustered_library(monkeypatch, size: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """``size`` pictures of 160 points each around one of 12 regions of descriptor space, as
    real descriptors crowd together, in a base built from shards."""
    keys, _ = a_library_in_shards(monkeypatch, size)
    rng = np.random.default_rng(11)
    regions = rng.integers(0, 256, (12, 32), dtype=np.uint8)
    return keys, {key: regions[rng.integers(12)] ^ np.packbits(rng.random((160, 256)) < 0.06, axis=1) for key in keys}


def test_a_large_search_of_many_cells_finds_the_nearest_through_groups_of_their_centres_and_nearly_every_close_point(tmp_path, monkeypatch):
    import dupe_scanner.backends.nearest_cells as nearest_cells
    from dupe_scanner.analysis.candidates import DESCRIPTOR_RADIUS, keypoint_candidates, pairs_of
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_clustered_library(monkeypatch, 60)  # 9,600 points in some 390 cells
    monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_CELLS", 200)
    monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_LOOKUPS", 5000)
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    new = copies_of(pictures, keys[:20], 1000, seed=4)
    everything = keys + new
    KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)  # writes the base
    queries = {everything.index(key): [pictures[key]] for key in new}

    def searched(pictures_searched: int):
        points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(everything, load, queries=pictures_searched)
        distances, _ = points.search(np.concatenate([pictures[key] for key in new]), 20)
        return points, int((distances < DESCRIPTOR_RADIUS).sum()), pairs_of(keypoint_candidates(points, len(everything), queries))

    (every_centre, close, found), (through_groups, close_through_groups, found_through_groups) = searched(10), searched(len(new))

    assert every_centre.nearest_cells.coarse is None and through_groups.nearest_cells.coarse is not None
    originals = {(len(keys) + n, n) for n in range(20)}
    assert set(found) >= originals and set(found_through_groups) >= originals  # each copy finds its original
    assert close_through_groups >= 0.97 * close


def test_a_large_build_files_its_points_in_cells_found_through_groups_mostly_their_nearest(tmp_path, monkeypatch):
    import faiss

    import dupe_scanner.backends.nearest_cells as nearest_cells
    from dupe_scanner.analysis.candidates import DESCRIPTOR_RADIUS
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_clustered_library(monkeypatch, 60)  # 9,600 points in some 390 cells
    monkeypatch.setattr(nearest_cells, "GROUPS_PROBED", 4)  # of 20: as few of them as a large base's 16 of 166
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    new = copies_of(pictures, keys[:20], 1000, seed=4)
    copies = np.concatenate([pictures[key] for key in new])

    def built(folder: str, grouped: bool):
        monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_CELLS", 200 if grouped else 10**9)
        monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_LOOKUPS", 5000)
        (tmp_path / folder).mkdir()
        store = KeypointStore(tmp_path / folder / "state.db.keypoints", "test-analyser")
        points = store.points(keys, load, queries=60)
        kept = store._read_kept()
        assert kept is not None
        return kept.base.index, points

    (every_centre, exactly_filed), (through_groups, filed_through_groups) = built("exact", False), built("grouped", True)

    def filed(base) -> tuple[np.ndarray, np.ndarray]:  # each point's id and its distance to its cell's centre
        centres = np.unpackbits(base.quantizer.reconstruct_n(0, base.nlist).reshape(base.nlist, 32), axis=1)
        ids, distances = [], []
        for cell in range(base.nlist):
            size = base.invlists.list_size(cell)
            codes = faiss.rev_swig_ptr(base.invlists.get_codes(cell), size * 32).reshape(size, 32)
            ids.append(faiss.rev_swig_ptr(base.invlists.get_ids(cell), size).copy())
            distances.append((np.unpackbits(codes, axis=1) != centres[cell]).sum(axis=1))
        order = np.argsort(np.concatenate(ids))
        return np.concatenate(ids)[order], np.concatenate(distances)[order]

    (exact_ids, nearest), (grouped_ids, found) = filed(every_centre), filed(through_groups)
    (close, _), (close_through_groups, _) = exactly_filed.search(copies, 20), filed_through_groups.search(copies, 20)

    assert exactly_filed.nearest_cells.coarse is None and filed_through_groups.nearest_cells.coarse is not None
    assert np.array_equal(exact_ids, np.arange(9600)) and np.array_equal(grouped_ids, exact_ids)  # every point once, under its own number
    assert (found >= nearest).all() and 0.9 <= (found == nearest).mean() < 1  # looked up in 4 groups: a few in a farther cell
    assert (close_through_groups < DESCRIPTOR_RADIUS).sum() >= 0.97 * (close < DESCRIPTOR_RADIUS).sum()


def test_a_small_search_or_a_base_of_few_cells_compares_each_descriptor_with_every_centre(tmp_path, monkeypatch):
    import dupe_scanner.backends.nearest_cells as nearest_cells
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_clustered_library(monkeypatch, 60)  # some 390 cells
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, load)
    monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_LOOKUPS", 5000)
    few_cells = store.points(keys, load, queries=60)  # 19,200 descriptors
    monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_CELLS", 200)
    small_search = store.points(keys, load, queries=10)  # 3,200

    assert few_cells.nearest_cells.coarse is None and small_search.nearest_cells.coarse is None
    assert searched_alike(small_search, pictures)


def test_the_groups_of_a_bases_cells_are_made_once_for_its_build_and_the_parts_of_a_scan_and_again_for_other_cells(tmp_path, monkeypatch):
    import dupe_scanner.backends.keypoint_store as keypoint_store
    import dupe_scanner.backends.nearest_cells as nearest_cells
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_clustered_library(monkeypatch, 60)  # some 390 cells
    monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_CELLS", 200)
    monkeypatch.setattr(nearest_cells, "COARSE_ABOVE_LOOKUPS", 5000)
    grouped: list[int] = []

    def noting(centres):
        grouped.append(len(centres))
        return nearest_cells.coarse_level(centres)

    monkeypatch.setattr(keypoint_store, "coarse_level", noting)
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")

    first_part = store.points(keys, load, queries=60)  # a first scan: the base built, written, then searched
    next_part = store.points(keys, load, queries=60)
    built_alone = len(grouped)
    store.clear()
    other_pictures = store.points(keys[:45], load, queries=45)  # a base of other cells

    assert first_part.nearest_cells.coarse is next_part.nearest_cells.coarse is not None
    assert built_alone == 1  # the groups the build filed its points through are the ones both parts searched through
    assert other_pictures.nearest_cells.coarse is not first_part.nearest_cells.coarse
    assert len(grouped) == 2


def test_a_coarse_level_files_every_cell_once_under_its_own_number():
    from dupe_scanner.backends.nearest_cells import coarse_level

    centres = np.random.default_rng(2).integers(0, 256, (500, 32), dtype=np.uint8)
    level = coarse_level(centres)
    level.nprobe = level.nlist  # every group: the exact nearest cells

    distances, cells = level.search(centres, 1)

    assert level.ntotal == 500 and level.nlist == 22
    assert np.array_equal(cells[:, 0], np.arange(500)) and not distances.any()


def spans_given_back_noted(monkeypatch) -> list[tuple[int, int]]:
    """The cell spans of mapped lists given back from now on, each noted as it is."""
    import dupe_scanner.backends.mapped_lists as mapped_lists

    given_back: list[tuple[int, int]] = []
    release = mapped_lists.MappedLists.release

    def release_noted(lists, first: int, end: int) -> None:
        given_back.append((first, end))
        release(lists, first, end)

    monkeypatch.setattr(mapped_lists.MappedLists, "release", release_noted)
    return given_back


def test_a_search_in_spans_gives_back_the_pages_of_each_span_after_it_and_a_held_one_none(tmp_path, monkeypatch):
    import dupe_scanner.backends.mapped_lists as mapped_lists
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 60)
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)
    base = next(tmp_path.glob("*.ivf"))
    given_back = spans_given_back_noted(monkeypatch)

    def spans_given_back(span_bytes: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        monkeypatch.setattr(mapped_lists, "SPAN_BYTES", span_bytes)
        given_back.clear()
        points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)
        points.search(pictures[keys[0]], 8)
        return points.spans(), list(given_back)

    held, none = spans_given_back(base.stat().st_size)
    assert len(held) == 1 and none == []  # held whole
    spans, released = spans_given_back(32 << 10)
    assert len(spans) >= 10 and released == spans


def test_descriptors_searched_together_walk_a_base_too_large_to_hold_a_span_at_a_time_and_find_what_a_held_search_finds(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import dupe_scanner.backends.mapped_lists as mapped_lists
    from dupe_scanner.analysis.cell_order import search_together
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 60)  # 384 KB of lists
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)
    given_back = spans_given_back_noted(monkeypatch)
    queries = np.concatenate(list(pictures.values()))

    def searched(span_bytes: int):
        monkeypatch.setattr(mapped_lists, "SPAN_BYTES", span_bytes)
        given_back.clear()
        points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load, queries=len(keys))
        with ThreadPoolExecutor(max_workers=2) as pool:
            found = search_together(points, queries, 32, pool)
        return points.spans(), list(given_back), found.of(0, len(queries))

    held_spans, held_given_back, (held_distances, _) = searched(1 << 30)
    spans, spans_given_back, (distances, _) = searched(64 << 10)

    assert len(held_spans) == 1 and held_given_back == []
    assert len(spans) >= 5 and spans_given_back == spans  # each once, in order: the next span is begun after it
    assert np.array_equal(distances, held_distances)


def test_a_few_new_pictures_searched_beside_a_base_too_large_to_hold_are_searched_with_every_cell_at_once_and_found(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import dupe_scanner.backends.mapped_lists as mapped_lists
    from dupe_scanner.analysis.cell_order import search_together
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 60)  # 392 cells
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, load)
    monkeypatch.setattr(mapped_lists, "SPAN_BYTES", 64 << 10)
    given_back = spans_given_back_noted(monkeypatch)
    new = copies_of(pictures, keys[:1], 1000, seed=4)  # not yet in the base: searched exhaustively beside it

    points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys + new, load, queries=1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = search_together(points, pictures[new[0]], 2, pool)

    assert points.delta.points == 160 and len(points._walked) >= 5
    assert points.spans() == [(0, points.kept.base.index.nlist)]  # one search of every cell, the delta's points too
    assert given_back == points._walked  # ... which walks the base a span at a time, as a small search does
    _, rows = found.of(0, 160)
    assert (np.sort(rows, axis=1) == [0, len(keys)]).all()  # its original in the base, itself in the delta


def test_giving_back_a_span_of_a_mapped_base_takes_its_pages_and_those_mapped_back_before_it_out_of_the_process(tmp_path, monkeypatch):
    import dupe_scanner.backends.mapped_lists as mapped_lists
    from dupe_scanner.backends.keypoint_store import KeypointStore
    from dupe_scanner.backends.mapped_lists import PAGE, MappedLists

    monkeypatch.setattr(mapped_lists, "FAULT_AROUND", 2 * PAGE)

    keys, pictures = a_library_in_shards(monkeypatch, 60)  # 384 KB of lists
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, lambda some: [pictures[key] for key in some])
    kept = store._read_kept()
    assert kept is not None
    lists = MappedLists.of(kept.base.index)
    assert lists is not None
    base = next(tmp_path.glob("*.ivf"))
    kept.base.index.search(np.concatenate([pictures[key] for key in keys]), 8)  # reads every list
    whole = resident_bytes(base)
    assert whole > lists.size * 0.9

    first, end = lists.spans(64 << 10)[2]
    lists.release(first, end)
    span_pages = -(-lists.start(end) // PAGE) - lists.start(first) // PAGE + 2
    assert 0.9 * span_pages * PAGE <= whole - resident_bytes(base) <= span_pages * PAGE  # its pages and two before, none after
    lists.release(0, lists.cells)
    assert resident_bytes(base) <= lists.start(0)  # the header's pages at most


def resident_bytes(mapped_file: Path) -> int:
    """This process's resident bytes of its mappings of ``mapped_file`` (Linux's smaps)."""
    resident, in_file = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and ":" not in fields[0]:  # a mapping's first line: address range, ..., path
            in_file = fields[-1] == str(mapped_file)
        elif in_file and fields[0] == "Rss:":
            resident += int(fields[1]) * 1024
    return resident


def test_the_spans_of_a_mapped_base_cover_every_cell_once_in_order_each_within_its_bytes(tmp_path, monkeypatch):
    import faiss

    from dupe_scanner.backends.keypoint_store import KeypointStore
    from dupe_scanner.backends.mapped_lists import MappedLists

    keys, pictures = a_library_in_shards(monkeypatch, 60)
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, lambda some: [pictures[key] for key in some])
    kept = store._read_kept()
    assert kept is not None
    lists = MappedLists.of(kept.base.index)
    assert lists is not None and MappedLists.of(faiss.IndexBinaryFlat(256)) is None

    for most in (1, 4000, 32 << 10, lists.size):
        spans = lists.spans(most)
        assert [first for first, _ in spans] == [0] + [end for _, end in spans[:-1]] and spans[-1][1] == lists.cells
        assert all(lists.start(end) - lists.start(first) <= most or end == first + 1 for first, end in spans)
        assert all(lists.start(end + 1) - lists.start(first) > most for first, end in spans[:-1])  # none smaller than need be
    assert lists.spans(lists.size) == [(0, lists.cells)]


def test_a_large_search_files_the_pictures_new_since_the_base_in_its_cells_and_finds_what_one_index_of_them_all_finds(tmp_path, monkeypatch):
    import faiss

    from dupe_scanner.analysis.candidates import keypoint_candidates, pairs_of
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 60)  # 9,600 points in 392 cells
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, load)  # writes the base
    rng = np.random.default_rng(9)
    new = [f"{n:064x}" for n in range(1000, 1006)]  # after every old key, as rows come
    for original, key in enumerate(new):
        pictures[key] = pictures[keys[original]] ^ (rng.random((160, 32)) < 0.01).astype(np.uint8)
    everything = keys + new

    few = store.points(everything, load, queries=1)
    many = store.points(everything, load, queries=len(new))

    assert isinstance(few.delta.index, faiss.IndexBinaryFlat) and isinstance(many.delta.index, faiss.IndexBinaryIVF)
    # As one index of every picture in the base's cells, but for which of the points tied at
    # the last distance kept are kept: they come in another order.
    assert searched_alike(many, {key: pictures[key] for key in everything}, ties_at_the_end=True)
    queries = {everything.index(key): [pictures[key]] for key in new}
    copies = [(everything.index(key), original) for original, key in enumerate(new)]
    assert pairs_of(keypoint_candidates(many, len(everything), queries)) == pairs_of(keypoint_candidates(few, len(everything), queries)) == copies


def copies_of(pictures: dict[str, np.ndarray], originals: list[str], first: int, seed: int) -> list[str]:
    """New pictures, each a copy of one of ``originals`` with a few bits off, keyed after every old key."""
    rng = np.random.default_rng(seed)
    new = [f"{n:064x}" for n in range(first, first + len(originals))]
    for original, key in zip(originals, new, strict=True):
        pictures[key] = pictures[original] ^ (rng.random((160, 32)) < 0.01).astype(np.uint8)
    return new


def test_new_pictures_are_filed_in_segments_beside_the_base_so_a_scan_reads_only_those_new_since_and_finds_them_all(tmp_path, monkeypatch):
    import dupe_scanner.backends.keypoint_store as keypoint_store
    from dupe_scanner.analysis.candidates import keypoint_candidates, pairs_of
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 60)
    monkeypatch.setattr(keypoint_store, "SEGMENT_CONTENTS", 4)
    loaded: list[str] = []

    def load(some):
        loaded.extend(some)
        return [pictures[key] for key in some]

    def scan(new: list[str]):
        loaded.clear()
        everything = sorted(pictures)
        points = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(everything, load, queries=1)  # a new process each time
        queries = {everything.index(key): [pictures[key]] for key in new}
        return points, pairs_of(keypoint_candidates(points, len(everything), queries))

    def kept_files() -> list[str]:
        return sorted(path.suffix for path in tmp_path.iterdir())

    scan([])  # writes the base
    added: list[str] = []
    for batch, (first, size) in enumerate([(1000, 3), (1003, 2), (1005, 5), (1010, 4), (1014, 1)]):
        new = copies_of(pictures, keys[first - 1000 : first - 1000 + size], first, seed=batch)
        added += new
        points, found = scan(new)
        assert found == [(len(keys) + added.index(key), first - 1000 + n) for n, key in enumerate(new)]  # each copy finds its original

    # Batches of 3 (a delta), then 5 with the 2 more (a segment), 5 (a segment as large: the
    # two merged into one of 10), 4 (a second), 1 (a delta): only the last was read again.
    assert [len(segment.keys) for segment in points.kept.segments] == [10, 4] and loaded == added[-1:]
    assert kept_files() == [".ivf", ".keypoints", ".segment", ".segment"]  # the merged ones removed
    # A large search files the delta in the cells too: then as one index of every picture in them.
    everything = sorted(pictures)
    large = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(everything, load, queries=len(everything))
    assert searched_alike(large, {key: pictures[key] for key in everything}, ties_at_the_end=True)


def test_segments_merge_while_the_newest_is_as_large_as_the_one_before_it_or_there_are_too_many():
    from dupe_scanner.backends.keypoint_store import MAX_SEGMENTS, _merges

    assert _merges([1000]) == 0 and _merges([1000, 1000]) == 1 and _merges([2000, 1000]) == 0
    assert _merges([4000, 2000, 1000, 1000]) == 3  # to one of 8,000
    assert _merges([8000, 2000, 1000, 1500]) == 2  # 8,000 and 4,500
    assert _merges([2**n for n in range(MAX_SEGMENTS + 1, 0, -1)]) == 1  # falling sizes, one too many


def test_a_segment_that_finds_no_room_leaves_its_pictures_in_the_delta_and_the_kept_files_as_they_were(tmp_path, monkeypatch, caplog):
    import faiss

    import dupe_scanner.backends.keypoint_store as keypoint_store
    from dupe_scanner.analysis.candidates import keypoint_candidates, pairs_of
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 40)
    monkeypatch.setattr(keypoint_store, "SEGMENT_CONTENTS", 2)
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, load)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    new = copies_of(pictures, keys[:3], 1000, seed=4)
    write = faiss.write_index_binary

    def no_room_for_segments(index, path):
        if path.endswith(".segment"):
            write(index, path)  # a part of it, as a full disk leaves it
            raise RuntimeError(f"Error: 'ret == (n)' failed: write error in {path}: No space left on device")
        write(index, path)

    monkeypatch.setattr(faiss, "write_index_binary", no_room_for_segments)
    everything = sorted(pictures)
    points = store.points(everything, load, queries=1)

    assert "the keypoints of 3 new pictures are not kept for the next scan" in caplog.text and "No space left on device" in caplog.text
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    assert not points.kept.segments and len(points.delta.owners.rows) == 3
    queries = {everything.index(key): [pictures[key]] for key in new}
    assert pairs_of(keypoint_candidates(points, len(everything), queries)) == [(everything.index(key), n) for n, key in enumerate(new)]


def test_the_base_is_written_anew_once_the_pictures_new_since_it_outgrow_a_quarter_of_it_segments_included(tmp_path, monkeypatch):
    import dupe_scanner.backends.keypoint_store as keypoint_store
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 40)
    monkeypatch.setattr(keypoint_store, "SEGMENT_CONTENTS", 4)
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    store = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser")
    store.points(keys, load)
    copies_of(pictures, keys[:8], 1000, seed=1)
    assert len(store.points(sorted(pictures), load).kept.segments) == 1  # 8 new: a segment, under a quarter of 40
    copies_of(pictures, keys[8:11], 1008, seed=2)
    rewritten = store.points(sorted(pictures), load)  # 11 new: over a quarter

    assert not rewritten.kept.segments and len(rewritten.kept.base.keys) == 51 and not rewritten.delta.points
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".ivf", ".keypoints"]


def no_room_after_the_first_shard(monkeypatch) -> list[str]:
    """The shards' files a build writes from now on (their names, as it tries each), the
    disk full after the first, as faiss says it."""
    import faiss

    write = faiss.write_index_binary
    shards: list[str] = []

    def writes_one_shard(index, path):
        if path.endswith(".shard"):
            shards.append(path)
            if len(shards) > 1:
                raise RuntimeError(f"Error: 'ret == (n)' failed: write error in {path}: No space left on device")
        write(index, path)

    monkeypatch.setattr(faiss, "write_index_binary", writes_one_shard)
    return shards


def test_a_base_whose_shards_find_no_room_is_built_in_memory_and_searches_the_same(tmp_path, monkeypatch, caplog):
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 30)
    shards = no_room_after_the_first_shard(monkeypatch)
    kept = KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, lambda some: [pictures[k] for k in some])

    assert len(shards) == 2 and "built in memory in one go" in caplog.text and "No space left on device" in caplog.text
    assert searched_alike(kept, pictures)
    assert not list(tmp_path.glob("*.shard"))  # the one written is gone too


def test_a_base_too_large_for_memory_that_finds_no_room_beside_the_state_stops_before_its_build_with_the_room_it_needs(
    tmp_path, monkeypatch, tiny_disk
):
    import dupe_scanner.backends.build_room as build_room
    from dupe_scanner.backends.keypoint_store import KeypointStore
    from dupe_scanner.errors import NoRoomForIndex

    keys, pictures = a_library_in_shards(monkeypatch, 30)
    monkeypatch.setattr(build_room, "IN_MEMORY_MOST", 1000)  # 30 pictures' points are a large library here
    state = tiny_disk(tmp_path / "state", "2m")
    filler = fill(state, build_room.room_needed(30 * 160) - 64 * 1024)
    loaded: list[str] = []

    def load(some):
        loaded.extend(some)
        return [pictures[key] for key in some]

    with pytest.raises(NoRoomForIndex) as stopped:
        KeypointStore(state / "state.db.keypoints", "test-analyser").points(keys, load)

    message = str(stopped.value)
    assert f"no room for the keypoint index beside the state in {state}" in message
    assert "needs about 0.4 MB free there for 4,800 points" in message and "are free" in message
    assert "Free some space there, or move the state to a larger disk ([paths] state in settings.toml)" in message
    assert len(loaded) == 10  # the sample that sized it: no training, no point filed
    assert sorted(state.iterdir()) == [filler]

    filler.unlink()
    assert searched_alike(KeypointStore(state / "state.db.keypoints", "test-analyser").points(keys, load), pictures)


def test_a_base_too_large_for_memory_whose_shards_fill_the_disk_midway_stops_the_scan_and_leaves_no_shard(tmp_path, monkeypatch):
    import dupe_scanner.backends.build_room as build_room
    from dupe_scanner.backends.keypoint_store import KeypointStore
    from dupe_scanner.errors import NoRoomForIndex

    keys, pictures = a_library_in_shards(monkeypatch, 30)
    monkeypatch.setattr(build_room, "IN_MEMORY_MOST", 1000)
    shards = no_room_after_the_first_shard(monkeypatch)
    with pytest.raises(NoRoomForIndex, match=r"a shard of its build could not be written: .*No space left on device"):
        KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, lambda some: [pictures[k] for k in some])

    assert len(shards) == 2 and not list(tmp_path.iterdir())


def test_a_base_too_large_for_memory_whose_file_finds_no_room_stops_the_scan_and_leaves_no_shard(tmp_path, monkeypatch):
    import dupe_scanner.backends.build_room as build_room
    import dupe_scanner.backends.ivf_file as ivf_file
    from dupe_scanner.backends.keypoint_store import KeypointStore
    from dupe_scanner.errors import NoRoomForIndex

    keys, pictures = a_library_in_shards(monkeypatch, 30)
    monkeypatch.setattr(build_room, "IN_MEMORY_MOST", 1000)

    def no_room(index, shards, path):
        import errno

        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ivf_file, "write_from_shards", no_room)
    with pytest.raises(NoRoomForIndex, match="its file could not be written"):
        KeypointStore(tmp_path / "state.db.keypoints", "test-analyser").points(keys, lambda some: [pictures[k] for k in some])

    assert not list(tmp_path.iterdir())


def test_a_base_written_anew_on_a_disk_with_room_for_one_removes_the_kept_one_first(tmp_path, monkeypatch, tiny_disk, caplog):
    import dupe_scanner.backends.build_room as build_room
    from dupe_scanner.backends.keypoint_store import KeypointStore

    keys, pictures = a_library_in_shards(monkeypatch, 30)
    monkeypatch.setattr(build_room, "IN_MEMORY_MOST", 1000)
    load = lambda some: [pictures[key] for key in some]  # noqa: E731
    state = tiny_disk(tmp_path / "state", "2m")
    store = KeypointStore(state / "state.db.keypoints", "test-analyser")
    store.points(keys, load)
    kept = sum(path.stat().st_size for path in state.glob("*.ivf"))
    copies_of(pictures, keys[:10], 1000, seed=3)  # a third more: the base is written anew
    needed = build_room.room_needed(40 * 160)
    filler = fill(state, needed - kept // 2)  # room for the new one once the old one is gone
    caplog.set_level("INFO")

    rewritten = store.points(sorted(pictures), load)

    assert "the kept keypoint index is removed before it is built anew" in caplog.text
    assert len(rewritten.kept.base.keys) == 40 and searched_alike(rewritten, pictures)
    assert sorted(path.suffix for path in state.iterdir() if path != filler) == [".ivf", ".keypoints"]


def test_a_full_scan_reads_the_pictures_keypoints_a_chunk_at_a_time_and_finds_the_same_pairs(backend, tmp_path, monkeypatch):
    import dupe_scanner.analysis.candidates as candidates

    paths = variants(photo(1), tmp_path, "alpha") + variants(photo(2), tmp_path, "beta")
    index_all(backend, paths)
    at_once = list(backend.find_pairs(None, 0.6))
    reads: list[int] = []
    load = backend._load_descriptors

    def counted(keys):
        reads.append(len(keys))
        return load(keys)

    monkeypatch.setattr(backend, "_load_descriptors", counted)
    monkeypatch.setattr(candidates, "QUERY_CHUNK", 3)
    chunked = list(backend.find_pairs(None, 0.6))
    assert [(pair.first, pair.second) for pair in chunked] == [(pair.first, pair.second) for pair in at_once]
    # A rejected pair's score is a sum of floats, and OpenCV may add them up in another order
    # from one run to the next: it can move in its last bit.
    assert [pair.score for pair in chunked] == pytest.approx([pair.score for pair in at_once], abs=1e-12)
    assert reads.count(3) == len(paths) // 3  # every picture's query, three at a time (beside the index's own reads)


def test_a_scan_after_pictures_were_forgotten_reads_only_the_new_contents_hashes_from_the_state(tmp_path, monkeypatch):
    from dupe_scanner.backends import embedded

    engine = open_engine(tmp_path / "state.db")
    backend = EmbeddedBackend(engine, workers=1, max_image_pixels=10**8, hash_file=tmp_path / "state.db.hashes")
    whole_reads: list[int] = []
    hash_rows = embedded.stored.hash_rows

    def counted(connection, analyser, content_hashes=None):
        if content_hashes is None:
            whole_reads.append(1)
        return hash_rows(connection, analyser, content_hashes)

    monkeypatch.setattr(embedded.stored, "hash_rows", counted)
    try:
        originals = [tmp_path / f"photo-{n}.jpg" for n in range(4)]
        for number, path in enumerate(originals):
            photo(20 + number, (320, 220)).save(path, quality=92)
        index_all(backend, originals)
        assert matches(backend, None) == [] and whole_reads == [1]

        backend.forget(["photo-1.jpg", "photo-2.jpg"])  # deleted from the library
        copy = tmp_path / "photo-3-small.png"
        Image.open(originals[3]).resize((160, 110), Image.Resampling.LANCZOS).save(copy)
        index_all(backend, [copy])

        assert [(pair.first, pair.second) for pair in matches(backend, {copy.name})] == [(copy.name, "photo-3.jpg")]
        assert whole_reads == [1]
    finally:
        backend.close()
        engine.dispose()


def test_the_rows_of_the_contents_asked_for_come_in_the_order_asked_and_unknown_ones_are_left_out():
    first, middle, last = ("a" * 64, "b" * 64, "c" * 64)
    sorted_keys = np.array([first, middle, last], dtype="S64")  # a hash table's keys
    assert _rows_in_order(sorted_keys, [last, "z" * 64, first, "0" * 64]).tolist() == [2, 0]
    assert _rows_among(sorted_keys, [last, first, last]).tolist() == [0, 2]
    assert _rows_in_order(sorted_keys, []).tolist() == []
    assert _rows_in_order(sorted_keys[:0], [first]).tolist() == []
