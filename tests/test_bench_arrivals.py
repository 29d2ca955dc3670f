"""The labelled bench's ``--arrivals``: the set's pictures come in batches, as to a library that grows."""

from __future__ import annotations

from bench.__main__ import arriving


def test_the_pictures_arrive_in_batches_in_one_random_order_under_their_own_names(tmp_path):
    images, staging = tmp_path / "images", tmp_path / "staging"
    for family in ("a", "b", "c"):
        (images / family).mkdir(parents=True)
        for n in range(4):
            (images / family / f"v{n}.jpg").write_bytes(f"{family}{n}".encode())

    def arrived() -> list[list[str]]:
        batches: list[list[str]] = []
        seen: set[str] = set()
        for _ in arriving(images, staging, 3):
            now = {path.relative_to(staging).as_posix() for path in staging.rglob("*.jpg")}
            batches.append(sorted(now - seen))
            seen = now
        return batches

    batches = arrived()
    every_name = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.jpg"))
    in_arrival = [name for batch in batches for name in batch]
    assert [len(batch) for batch in batches] == [4, 4, 4]
    assert sorted(in_arrival) == every_name and in_arrival != every_name  # each once, not in the names' order
    assert all((staging / name).read_bytes() == (images / name).read_bytes() for name in in_arrival)
    for path in staging.rglob("*.jpg"):
        path.unlink()
    assert arrived() == batches  # the same order at every run


def test_one_batch_is_the_folder_itself_indexed_once(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"a")

    assert len(list(arriving(tmp_path / "images", tmp_path / "staging", 1))) == 1
    assert not (tmp_path / "staging").exists()
