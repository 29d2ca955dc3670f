"""Photo-like test images made with Pillow and numpy, and the copies a user's folder gets.

A plain gradient or a few rectangles are too easy to tell apart; these have smooth
illumination, shapes of many sizes and sensor noise, like a photograph.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter


def make_photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(size)
    base = np.zeros((height, width, 3))
    for channel in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 4, 2).tolist()
            phase = rng.uniform(0, 6.28)
            base[..., channel] += np.sin(fx * 6.28 * x + fy * 6.28 * y + phase) * rng.uniform(20, 60)
    image = Image.fromarray(np.clip(base + 128, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(15, 30))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(10, width // 3)), int(rng.integers(10, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = (x0, y0, x0 + w, y0 + h)
        if rng.random() < 0.5:
            draw.ellipse(shape, fill=colour)
        else:
            draw.rectangle(shape, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    noise = rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=float) + noise, 0, 255).astype(np.uint8))


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def exif_rotated_copy(image: Image.Image, path: Path) -> Path:
    """Pixels stored turned 90 degrees, with an EXIF Orientation tag that shows them upright."""
    stored = image.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # display: rotate 90 clockwise
    return save(stored, path, format="JPEG", quality=92, exif=exif.tobytes())


def copies_of(original: Path, folder: Path, stem: str) -> list[Path]:
    """The variations the seed tool promised to catch, that need no cropping or text."""
    image = Image.open(original).convert("RGB")
    width, height = image.size
    return [
        save(image.resize((width // 2, height // 2), Image.Resampling.LANCZOS), folder / f"{stem}-small.jpg", quality=90),
        save(image, folder / f"{stem}-recompressed.jpg", quality=55),
        save(image, folder / f"{stem}-format.png"),
        save(image, folder / f"{stem}-format.webp", quality=85),
        save(ImageEnhance.Brightness(image).enhance(1.25), folder / f"{stem}-bright.jpg", quality=90),
        save(image.transpose(Image.Transpose.ROTATE_270), folder / f"{stem}-rotated.jpg", quality=90),
        exif_rotated_copy(image, folder / f"{stem}-exif.jpg"),
        Path(shutil.copyfile(original, folder / f"{stem}-copy.jpg")),
    ]


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
