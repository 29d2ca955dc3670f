"""Libraries of many distinct real pictures, with a few percent of planted copies, for bench/scale.

The pictures are non-overlapping tiles of real photographs (Debian's wallpaper packages,
stellarium's photographs of nebulae, scikit-image's samples: the seeds of bench/dataset.py's
``find_seeds`` plus the panoramas). Two tiles never share a pixel of their photograph, so
they are different pictures; a tile is also shrunk by a random factor, so the library holds
pictures of many sizes and aspects.

Every library is a prefix of one endless sequence (the *pool*): the library of 4,000 holds
the library of 1,000. Position k of the sequence is a planted copy when k % COPY_EVERY is
COPY_EVERY - 1, made with one of bench/dataset.py's variations (in turn, so every kind of
change is planted about as often) from a tile earlier in the sequence; every other position
is the next tile. The pool is written once under ``root`` and grows on demand.

Labels: every picture's family is the tile it shows; (tile, copy) pairs are the positives.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.dataset import Seed, find_seeds, variations

COPY_EVERY = 20  # one planted copy in 20 pictures: 5 %, spread over every kind of change
# A tile's sides in the photograph's pixels, by pool. Smaller than a camera's pictures: the
# photographs at hand hold about 800 megapixels, and every tile must be a picture of its own.
# pool-v1's tiles give 4,592 pictures; pool-v2 cuts smaller ones so they give 16,000 (16,952).
# pool-camera's tiles fill the analysis' working image (fingerprints.WORK_SIDE) and are written
# at a camera's size: about 2,300 of them.
TILE_SIDES = {"pool-v1": (192, 640), "pool-v2": (104, 336), "pool-camera": (460, 720)}
POOL_VERSION = "pool-v2"  # the default
SHRINK = (0.6, 1.0)  # a tile is written at this share of its size (several scales)
# pool-camera: each tile keeps all of its detail and is enlarged to a camera's long side, with
# grain (Gaussian, in grey levels of 255) so its JPEG holds as many bytes as a camera's (3 MB
# or so at 12 to 16 megapixels, against 0.3 to 1.5 MB enlarged without it): decoding it then
# costs what decoding a photograph does, which is most of what indexing one costs.
CAMERA_POOLS = {"pool-camera"}
CAMERA_SIDE = 4000
CAMERA_GRAIN = 4.0
FLAT_STD = 12.0  # tiles of sky or plain colour are left out: any two of them look alike
ADDED_DISTINCT = 50  # the "100 added" step: 50 new pictures and 50 copies of library pictures
RESERVED_TILES = 200  # tiles kept out of every library, for the added pictures
NEBULA_ROOT = Path("/usr/share/stellarium/nebulae/default")  # stellarium-data: real astrophotographs
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Tile:
    seed: Seed
    box: tuple[int, int, int, int]  # left, top, right, bottom in the photograph
    shrink: float

    @property
    def key(self) -> str:
        return f"{self.seed.name}@{','.join(map(str, self.box))}"


# -- the tiles ------------------------------------------------------------------------------------


def all_seeds(skimage_dir: Path | None) -> list[Seed]:
    seeds = find_seeds(skimage_dir)
    for path in sorted(NEBULA_ROOT.glob("*.png")) if NEBULA_ROOT.exists() else []:
        seeds.append(Seed(f"stellarium-{path.stem}", "stellarium-data", path))
    return seeds


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        width, height = image.size
        turned = image.getexif().get(0x0112) in (5, 6, 7, 8)  # shown a quarter turn round
    return (height, width) if turned else (width, height)


def split_boxes(box: tuple[int, int, int, int], sides: tuple[int, int], rng: random.Random) -> list[tuple[int, int, int, int]]:
    """Cut ``box`` into rectangles with sides within ``sides``: guillotine cuts at random places."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    low, high = sides
    if width < low or height < low:
        return []
    if width <= high and height <= high:
        return [box]
    if width >= height:
        cut = left + rng.randint(low, min(high, width - low)) if width >= 2 * low else left + high
        return split_boxes((left, top, cut, bottom), sides, rng) + split_boxes((cut, top, right, bottom), sides, rng)
    cut = top + rng.randint(low, min(high, height - low)) if height >= 2 * low else top + high
    return split_boxes((left, top, right, cut), sides, rng) + split_boxes((left, cut, right, bottom), sides, rng)


def seed_tiles(seed: Seed, version: str) -> list[Tile]:
    rng = random.Random(f"{version}-{seed.name}")
    width, height = _size(seed.path)
    shrink = (1.0, 1.0) if version in CAMERA_POOLS else SHRINK
    return [Tile(seed, box, round(rng.uniform(*shrink), 3)) for box in split_boxes((0, 0, width, height), TILE_SIDES[version], rng)]


def tile_order(seeds: list[Seed], version: str) -> list[Tile]:
    """Every tile of every seed, in one fixed shuffled order (so any prefix mixes the sources)."""
    tiles = [tile for seed in seeds for tile in seed_tiles(seed, version)]
    random.Random(version).shuffle(tiles)
    return tiles


# -- the pool -------------------------------------------------------------------------------------


class Pool:
    """The written pictures and their labels, under ``root``/``version``; grows on demand."""

    def __init__(self, root: Path, skimage_dir: Path | None, log=print, version: str = POOL_VERSION):
        self.version = version
        self.folder = root / version
        self.pictures = self.folder / "pictures"
        self.pictures.mkdir(parents=True, exist_ok=True)
        self.labels_path = self.folder / "labels.jsonl"
        self.log = log
        self.seeds = all_seeds(skimage_dir)
        self.tiles = tile_order(self.seeds, version)
        self.library_tiles = self.tiles[: len(self.tiles) - RESERVED_TILES]
        self.reserved_tiles = self.tiles[len(self.tiles) - RESERVED_TILES :]
        self._check_same_tiles()
        self.labels = self._read_labels()
        self.flat: set[str] = {entry["family"] for entry in self.labels.values() if entry.get("flat")}

    def _check_same_tiles(self) -> None:
        """The pool grows by the tile order it began with: other photographs would give other tiles."""
        order = hashlib.sha256("\n".join(tile.key for tile in self.tiles).encode()).hexdigest()
        mark = self.folder / "tile-order.sha256"
        if not mark.exists():
            mark.write_text(order)
        elif mark.read_text() != order:
            raise SystemExit(
                f"the photographs differ from those {self.folder} was built from (another package set?): remove it or use another --root",
            )

    @property
    def capacity(self) -> int:
        """How many pictures the sequence can hold at most (tiles plus their copies)."""
        return len(self.library_tiles) * COPY_EVERY // (COPY_EVERY - 1)

    def _read_labels(self) -> dict[str, dict]:
        if not self.labels_path.exists():
            return {}
        entries = [json.loads(line) for line in self.labels_path.read_text().splitlines() if line.strip()]
        return {entry["name"]: entry for entry in entries}

    def _append(self, entries: list[dict]) -> None:
        with self.labels_path.open("a") as out:
            for entry in entries:
                out.write(json.dumps(entry) + "\n")
                self.labels[entry["name"]] = entry

    def sequence(self, count: int) -> list[str]:
        """The names of the first ``count`` pictures of the sequence, writing those missing."""
        names = [entry["name"] for entry in self.labels.values() if entry["position"] is not None]
        names.sort(key=lambda name: self.labels[name]["position"])
        if len(names) < count:
            self._grow(len(names), count)
            return self.sequence(count)
        return names[:count]

    def _grow(self, have: int, count: int) -> None:
        """Write positions ``have`` .. ``count`` - 1: the tiles first (one seed at a time), then the copies."""
        tile_positions, copy_positions = [], []
        tiles_before = self._tiles_before(have)
        for position in range(have, count):
            if position % COPY_EVERY == COPY_EVERY - 1:
                copy_positions.append(position)
            else:
                tile_positions.append((position, tiles_before))
                tiles_before += 1
        self.log(f"pool: writing pictures {have + 1}..{count} ({len(tile_positions)} tiles, {len(copy_positions)} copies)")
        written = self._write_tiles([(f"{p:06d}.jpg", p, self._next_tile(i)) for p, i in tile_positions])
        self._append(written)
        originals = sorted(
            (e for e in self.labels.values() if e["role"] == "original" and e["position"] is not None and not e["flat"]), key=lambda e: e["position"],
        )
        self._append([self._write_copy(position, originals) for position in copy_positions])

    def _tiles_before(self, position: int) -> int:
        return position - position // COPY_EVERY

    def _next_tile(self, tile_index: int) -> Tile:
        """The tile at ``tile_index`` among the library tiles (flat ones stay, as unscored distractors)."""
        if tile_index >= len(self.library_tiles):
            raise SystemExit(f"the photographs give only {self.capacity} pictures: use smaller --sizes")
        return self.library_tiles[tile_index]

    def _write_tiles(self, jobs: list[tuple[str, int | None, Tile]]) -> list[dict]:
        """Write each tile (one seed loaded at a time); a flat tile is replaced by a flat-marked entry."""
        by_seed: dict[str, list[tuple[str, int | None, Tile]]] = {}
        for job in jobs:
            by_seed.setdefault(job[2].seed.name, []).append(job)
        entries = []
        for jobs_of_seed in by_seed.values():
            photo = load_photograph(jobs_of_seed[0][2].seed.path)
            for name, position, tile in jobs_of_seed:
                picture = cut_tile(photo, tile)
                if self.version in CAMERA_POOLS:
                    picture = camera_sized(picture, tile.key)
                picture.save(self.pictures / name, quality=JPEG_QUALITY)
                entries.append({"name": name, "position": position, "family": tile.key, "role": "original", "flat": is_flat(picture)})
        return entries

    def _write_copy(self, position: int, originals: list[dict]) -> dict:
        """A planted copy of a tile earlier in the sequence (``originals``: by position), with the next variation in turn."""
        rng = random.Random(f"{self.version}-copy-{position}")
        earlier = bisect.bisect_left([e["position"] for e in originals], position)
        source = originals[rng.randrange(earlier)]
        return self.copy_of(source, position, f"{position:06d}-copy", rng)

    def copy_of(self, source: dict, position: int | None, stem: str, rng: random.Random) -> dict:
        with Image.open(self.pictures / source["name"]) as image:
            original = image.convert("RGB")
        made = variations(original, rng, seed_number=position or 0)
        turn = (position or rng.randrange(1 << 30)) // COPY_EVERY % (len(made) + 1)
        if turn == len(made):  # the byte-identical copy: one turn in len(made) + 1
            name, kind, strength = f"{stem}.jpg", "identical", "byte-identical"
            shutil.copyfile(self.pictures / source["name"], self.pictures / name)
        else:
            kind, strength, write = made[turn]
            name = write(self.pictures / f"{stem}-{kind}".replace(">", "gt"))
        return {
            "name": name, "position": position, "family": source["family"], "role": "copy", "source": source["name"],
            "kind": kind, "strength": strength, "flat": False,
        }

    def added(self, library: list[str]) -> list[str]:
        """The 100 pictures added to a scanned library: 50 reserved tiles and 50 copies of its pictures."""
        tag = f"added-{len(library)}"
        tiles = [(f"x{i:04d}.jpg", None, tile) for i, tile in enumerate(self.reserved_tiles[:ADDED_DISTINCT])]
        copies = [name for name, entry in self.labels.items() if entry.get("added") == tag]
        if copies:
            return sorted([job[0] for job in tiles] + copies)
        self.log(f"pool: writing the 100 pictures added to the library of {len(library)}")
        # The 50 new tiles are the same for every library: none of them is in any library.
        self._append(self._write_tiles([job for job in tiles if job[0] not in self.labels]))
        rng = random.Random(f"{self.version}-{tag}")
        originals = [self.labels[name] for name in library if self.labels[name]["role"] == "original" and not self.labels[name]["flat"]]
        made = [self.copy_of(source, None, f"{tag}-{i:02d}", rng) for i, source in enumerate(rng.sample(originals, ADDED_DISTINCT))]
        for entry in made:
            entry["added"] = tag
        self._append(made)
        return sorted([job[0] for job in tiles] + [entry["name"] for entry in made])

    def link(self, names: list[str], folder: Path) -> Path:
        """``folder`` holding exactly ``names`` (hard links into the pool, so no copying)."""
        done = folder / ".complete"
        if done.exists() and done.read_text() == str(len(names)):
            return folder
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name in names:
            os.link(self.pictures / name, folder / name)
        done.write_text(str(len(names)))
        return folder

    def scoring_labels(self, names: list[str]) -> dict:
        """Labels in bench/metrics.py's form for the pictures ``names``; flat tiles left out of scoring."""
        images, positives = {}, []
        for name in names:
            entry = self.labels[name]
            images[name] = {"family": entry["family"], "split": "all", "role": entry["role"], "kind": entry.get("kind")}
            if entry["role"] == "copy" and entry["source"] in names:
                positives.append({"first": entry["source"], "second": name, "kind": entry["kind"], "strength": entry["strength"], "split": "all"})
        excluded = sorted({self.labels[name]["family"] for name in names if self.labels[name]["flat"]})
        return {"images": images, "positives": positives, "negatives": [], "excluded": excluded}


# -- pictures ---------------------------------------------------------------------------------------


def load_photograph(path: Path) -> Image.Image:
    """The photograph upright, at full resolution, transparency shown on white."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
        return image.convert("RGB")


def cut_tile(photo: Image.Image, tile: Tile) -> Image.Image:
    piece = photo.crop(tile.box)
    size = (max(1, round(piece.width * tile.shrink)), max(1, round(piece.height * tile.shrink)))
    return piece.resize(size, Image.Resampling.LANCZOS)


def camera_sized(picture: Image.Image, key: str) -> Image.Image:
    """``picture`` enlarged to ``CAMERA_SIDE`` on its long side, with ``CAMERA_GRAIN`` of grain
    (the same grain for the same tile, whichever run writes it)."""
    scale = CAMERA_SIDE / max(picture.size)
    enlarged = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    grain = rng.normal(0.0, CAMERA_GRAIN, (enlarged.height, enlarged.width, 1)).astype(np.float32)
    grainy = np.asarray(enlarged, dtype=np.float32) + grain
    return Image.fromarray(np.clip(grainy + 0.5, 0, 255).astype(np.uint8))


def is_flat(picture: Image.Image) -> bool:
    return float(np.asarray(picture.convert("L").resize((64, 64)), dtype=np.float32).std()) < FLAT_STD
