"""Test pictures: smooth random patterns, distinct per seed, that survive resizing and re-encoding.

Each is an 8x8 grid of random colours blown up with bicubic interpolation: different seeds
give unrelated low frequencies (so perceptual hashes differ in about half their bits),
while a resized or re-encoded copy keeps them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    cells = np.random.default_rng(seed).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(cells, "RGB").resize(size, Image.Resampling.BICUBIC)


def write_picture(
    path: Path,
    seed: int,
    size: tuple[int, int] = (320, 240),
    format: str | None = None,
    exif_orientation: int | None = None,
) -> Path:
    """Write ``picture(seed, size)`` to ``path`` (format from the suffix unless given)."""
    image = picture(seed, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        options["exif"] = exif.tobytes()
    image.save(path, format=format, **options)
    return path
