"""Building the labelled set: real photographs, every seed variation at graded strength, hard negatives.

Sources (installed by ``bench/setup.sh``): Debian's wallpaper packages (plasma-workspace-wallpapers,
mate-backgrounds, ukui-wallpapers, lomiri-wallpapers-20.04, gnome-backgrounds, desktop-base) and
scikit-image's sample photographs. Families of one picture shipped at several resolutions or
in light/dark versions contribute one seed only, so the set has no unlabelled duplicates.

Every seed is trimmed to its central ``ORIGINAL_WINDOW`` to make the *original*; the variants
are made from the original; the hard negatives (other shots of the same scene) are made
from the untrimmed seed, so they may show scene the original does not.

Labels (``labels.json``):
- ``positives``: (original, variant) pairs, each with the variation kind and strength;
- ``negatives``: (image, image) pairs known not to be duplicates: each hard negative against
  its original and that original's variants, the hard negatives of one scene among themselves,
  and the PNGs of two different translucent wallpapers (drawn in the alpha channel alone).
- Pairs between two images of different families are negatives too; pairs between two
  variants of one original are not scored (two different crops of a photo are, by our own
  rule, two frames of a scene rather than copies of each other).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from dupe_scanner.imaging import drawn_in_alpha_only, flattened

SET_VERSION = "set-v7"  # 7: a wallpaper also shipped in portrait sizes (sway) is one seed; 6: translucent wallpapers as shown
ORIGINAL_WINDOW = 0.86  # share of each side of the seed kept for the original
WORK_SIDE = 1600  # originals are at most this long (the speed test uses 12 MP photos separately)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
WALLPAPER_ROOTS = ("/usr/share/wallpapers", "/usr/share/backgrounds", "/usr/share/desktop-base")
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "grass.png", "gravel.png",
    "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg", "coins.png", "immunohistochemistry.png",
)
FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class Seed:
    name: str
    source: str
    path: Path


def split_of(name: str) -> str:
    """A seed's split, fixed by its name: thresholds are tuned on ``tune`` and reported on ``report``."""
    return "tune" if int(hashlib.sha256(name.encode()).hexdigest(), 16) % 3 == 0 else "report"


def find_seeds(skimage_dir: Path | None) -> list[Seed]:
    seeds: dict[str, Seed] = {}
    families: dict[str, list[Path]] = {}
    for root in WALLPAPER_ROOTS:
        for folder, _, files in os.walk(root):
            for file in files:
                path = Path(folder) / file
                if path.suffix.lower() not in IMAGE_EXTENSIONS or "screenshot" in file.lower():
                    continue
                families.setdefault(_family(path), []).append(path)
    for family, paths in sorted(families.items()):
        best = max(paths, key=_pixels)
        if _pixels(best) < 300 * 200 or "logos" in family:
            continue
        seeds[family] = Seed(family, "debian-wallpapers", best)
    if skimage_dir is not None:
        for name in SKIMAGE_PHOTOS:
            path = skimage_dir / name
            if path.exists():
                seeds[f"skimage-{path.stem}"] = Seed(f"skimage-{path.stem}", "scikit-image", path)
    return [seeds[key] for key in sorted(seeds)]


def _family(path: Path) -> str:
    """One name for every resolution and light/dark version of one wallpaper."""
    parts = path.parts
    if "wallpapers" in parts and "contents" in parts:  # plasma: NAME/contents/images*/WxH.ext
        return "plasma-" + parts[parts.index("contents") - 1]
    if "desktop-base" in parts:  # one theme folder, many renderings of one design
        return "desktop-base-" + parts[parts.index("desktop-base") + 1]
    stem = re.sub(r"([-_](l|d|dark|light|day|night|morning|portrait|landscape|\d+x\d+))+$", "", path.stem.lower())
    stem = re.sub(r"^(ubuntu-mate-)(cold|dark|radioactive|warm)", r"\1", stem)  # one design, recoloured
    stem = re.sub(r"^mate-", "", stem)
    return f"{path.parent.name}-{stem}"


def _pixels(path: Path) -> int:
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:
        return 0


# -- variations -------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


def hue_shift(image: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def tint(image: Image.Image, colour: tuple[int, int, int], amount: float) -> Image.Image:
    return Image.blend(image, Image.new("RGB", image.size, colour), amount)


def noise(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = np.asarray(image, dtype=np.float32) + rng.normal(0, sigma, (image.height, image.width, 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def crop_area(image: Image.Image, cut: float, rng: random.Random) -> Image.Image:
    """Cut away ``cut`` of the area, with a random aspect of the kept window, at a random offset."""
    keep = 1 - cut
    # Kept width and height shares with w * h = keep, each at least keep.
    w = math.exp(rng.uniform(math.log(keep), 0))
    h = keep / w
    width, height = round(image.width * w), round(image.height * h)
    left = rng.randint(0, image.width - width)
    top = rng.randint(0, image.height - height)
    return image.crop((left, top, left + width, top + height))


def caption(image: Image.Image, text: str, share: float, rng: random.Random) -> Image.Image:
    """Text whose box spans about ``share`` of the image height, white with a dark outline."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    size = max(10, int(image.height * share))
    font = _font(size)
    box = draw.textbbox((0, 0), text, font=font, stroke_width=max(1, size // 15))
    x = rng.randint(0, int(max(0, image.width - (box[2] - box[0]))))
    y = rng.randint(0, int(max(0, image.height - (box[3] - box[1]))))
    draw.text((x, y), text, font=font, fill=(255, 255, 255), stroke_width=max(1, size // 15), stroke_fill=(20, 20, 20))
    return out


def watermark(image: Image.Image, text: str, opacity: float) -> Image.Image:
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = _font(max(12, image.width // 10))
    for row in range(0, image.height, max(1, image.height // 4)):
        draw.text((image.width // 20, row), text, font=font, fill=(255, 255, 255, int(255 * opacity)))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def text_block(image: Image.Image, share: float, rng: random.Random) -> Image.Image:
    """A meme-style block: lines of large text over about ``share`` of the picture."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    lines = max(1, round(share * 6))
    size = int(image.height * share / lines * 0.8)
    font = _font(max(10, size))
    words = ["DUPLICATE", "SUMMER 2024", "HELLO WORLD", "BEST DAY", "NOT FOR SALE", "COPYRIGHT"]
    for line in range(lines):
        y = int(image.height * (0.5 - share / 2) + line * image.height * share / lines)
        draw.text((image.width // 30, y), rng.choice(words), font=font, fill=(255, 255, 40), stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
    return out


def exif_rotated(image: Image.Image, orientation: int) -> tuple[Image.Image, Image.Exif]:
    """Stored pixels and an EXIF Orientation tag that displays them as ``image``."""
    inverse = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return image.transpose(inverse), exif


def variations(original: Image.Image, rng: random.Random, seed_number: int) -> list[tuple[str, str, Callable[[Path], str]]]:
    """(kind, strength, maker) for every variation; maker(path_stem) writes the file(s), returns the file name."""
    w, h = original.size
    out: list[tuple[str, str, Callable[[Path], str]]] = []

    def saved(image: Image.Image, fmt: str = "JPEG", ext: str = "jpg", **options) -> Callable[[Path], str]:
        def write(stem: Path) -> str:
            path = stem.with_suffix("." + ext)
            image.save(path, fmt, **options)
            return path.name

        return write

    for factor in (0.4, 0.7, 1.4, 2.0):
        out.append(("saturation", f"x{factor}", saved(ImageEnhance.Color(original).enhance(factor), quality=90)))
    for factor in (0.6, 0.8, 1.25, 1.5):
        out.append(("brightness", f"x{factor}", saved(ImageEnhance.Brightness(original).enhance(factor), quality=90)))
    out.append(("contrast", "x0.7", saved(ImageEnhance.Contrast(original).enhance(0.7), quality=90)))
    out.append(("contrast", "x1.4", saved(ImageEnhance.Contrast(original).enhance(1.4), quality=90)))
    for degrees in (30, 90, 180):
        out.append(("colour", f"hue+{degrees}", saved(hue_shift(original, degrees), quality=90)))
    out.append(("colour", "tint-warm-25%", saved(tint(original, (255, 140, 0), 0.25), quality=90)))
    out.append(("colour", "tint-blue-40%", saved(tint(original, (0, 60, 255), 0.4), quality=90)))
    out.append(("colour", "greyscale", saved(original.convert("L"), quality=90)))
    for share in (0.25, 0.5, 0.75):  # of the pixels
        scale = math.sqrt(share)
        resized = original.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        out.append(("size", f"{int(share * 100)}%px", saved(resized, quality=90)))
    out.append(("size", "200%px", saved(original.resize((round(w * 1.414), round(h * 1.414)), Image.Resampling.BICUBIC), quality=90)))
    out.append(("format", "png", saved(original, "PNG", "png")))
    out.append(("format", "webp", saved(original, "WEBP", "webp", quality=80)))
    out.append(("format", "tiff", saved(original, "TIFF", "tiff")))
    for quality in (30, 60, 95):
        out.append(("format", f"jpeg-q{quality}", saved(original, quality=quality)))
    out.append(("orientation", "rot90", saved(original.transpose(Image.Transpose.ROTATE_90), quality=90)))
    out.append(("orientation", "rot180", saved(original.transpose(Image.Transpose.ROTATE_180), quality=90)))
    out.append(("orientation", "rot270", saved(original.transpose(Image.Transpose.ROTATE_270), quality=90)))
    out.append(("orientation", "mirror", saved(ImageOps.mirror(original), quality=90)))
    for tag in (6, 3):
        pixels, exif = exif_rotated(original, tag)
        out.append(("orientation", f"exif-{tag}", saved(pixels, quality=90, exif=exif)))
    radius = max(w, h) / 1000
    out.append(("clarity", "blur-1", saved(original.filter(ImageFilter.GaussianBlur(1.0 * radius)), quality=90)))
    out.append(("clarity", "blur-3", saved(original.filter(ImageFilter.GaussianBlur(3.0 * radius)), quality=90)))
    out.append(("clarity", "sharpen", saved(original.filter(ImageFilter.UnsharpMask(2 * radius, 150, 2)), quality=90)))
    out.append(("clarity", "noise-10", saved(noise(original, 10, seed_number), quality=90)))
    out.append(("clarity", "noise-25", saved(noise(original, 25, seed_number + 1), quality=90)))
    for cut in (0.05, 0.10, 0.20, 0.25):
        out.append(("crop", f"{int(cut * 100)}%", saved(crop_area(original, cut, rng), quality=90)))
    for cut in (0.30, 0.40):
        out.append(("crop>25%", f"{int(cut * 100)}%", saved(crop_area(original, cut, rng), quality=90)))
    out.append(("text", "caption-small", saved(caption(original, "Holiday 2019", 0.05, rng), quality=90)))
    out.append(("text", "caption-medium", saved(caption(original, "Greetings from the coast", 0.09, rng), quality=90)))
    out.append(("text", "watermark", saved(watermark(original, "© SAMPLE", 0.35), quality=90)))
    out.append(("text-large", "block-30%", saved(text_block(original, 0.3, rng), quality=90)))
    out.append(("text-large", "block-50%", saved(text_block(original, 0.5, rng), quality=90)))
    return out


# -- hard negatives: other shots of the same scene ------------------------------------------------


def window(seed: Image.Image, dx: float, dy: float, zoom: float = 1.0) -> Image.Image:
    """The original's window of the seed, moved by (dx, dy) of the seed's size and scaled by ``zoom``."""
    w, h = seed.size
    ww, wh = w * ORIGINAL_WINDOW * zoom, h * ORIGINAL_WINDOW * zoom
    left = (w - ww) / 2 + dx * w
    top = (h - wh) / 2 + dy * h
    return seed.crop((round(left), round(top), round(left + ww), round(top + wh)))


def perspective(seed: Image.Image, strength: float, rng: random.Random) -> Image.Image:
    """Another viewpoint: the scene seen from the side (a keystone homography), then the original's window.

    One vertical edge keeps the full height, the other is squeezed by ``strength`` at top
    and bottom: the picture is stretched unevenly, which no crop, scale or turn can do.
    """
    w, h = seed.size
    d = strength * h
    near, far = [(0, 0), (0, h)], [(w, d), (w, h - d)]
    if rng.random() < 0.5:
        corners = [near[0], far[0], far[1], near[1]]
    else:
        corners = [(0, d), (w, 0), (w, h), (0, h - d)]
    coefficients = _perspective_coefficients([(0, 0), (w, 0), (w, h), (0, h)], corners)
    warped = seed.transform(seed.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC)
    return window(warped, 0, 0)


def _perspective_coefficients(target, source):
    matrix = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        matrix.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        matrix.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.array(matrix, float), np.array(source, float).reshape(8)).tolist()


def exposure(image: Image.Image, stops: float) -> Image.Image:
    linear = (np.asarray(image, dtype=np.float32) / 255.0) ** 2.2 * (2.0**stops)
    return Image.fromarray(np.clip(255 * np.clip(linear, 0, 1) ** (1 / 2.2), 0, 255).astype(np.uint8))


def hard_negatives(seed: Image.Image, rng: random.Random) -> list[tuple[str, Image.Image]]:
    """Other shots of the original's scene; each shows scene the original lacks, or moved content."""
    sign = lambda: rng.choice((-1, 1))  # noqa: E731
    return [
        ("burst-frame", window(seed, sign() * 0.06, 0)),  # consecutive frame of a panning camera
        ("burst-frame-diagonal", window(seed, sign() * 0.04, sign() * 0.04)),
        (
            "stereo-pair",
            window(seed.transform(seed.size, Image.Transform.AFFINE, (1, 0.04 * sign(), 0, 0, 1, 0), Image.Resampling.BICUBIC), sign() * 0.05, 0),
        ),
        ("viewpoint", perspective(seed, 0.12, rng)),
        ("exposure-bracket", exposure(window(seed.rotate(sign() * 1.5, Image.Resampling.BICUBIC), sign() * 0.03, 0), rng.choice((-1.0, 1.0)))),
        ("zoomed-reframe", window(seed, sign() * 0.07, sign() * 0.04, zoom=0.93)),  # reaches ~3 % past the original's edge
    ]


# -- building -----------------------------------------------------------------------------------


def load_seed(seed: Seed, keep_alpha: bool = False) -> Image.Image:
    """The seed upright and at most the working size; transparency shown as dupe-scanner
    shows it (``dupe_scanner.imaging.flattened``), unless ``keep_alpha``."""
    with Image.open(seed.path) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "PA", "P"):
            image = image.convert("RGBA")
            if not keep_alpha:
                image = flattened(image)
        image = image.convert("RGBA" if keep_alpha else "RGB")
    scale = WORK_SIDE / ORIGINAL_WINDOW / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    return image


def translucent_original(seed: Seed) -> Image.Image | None:
    """The original as the RGBA file it comes from, for a wallpaper drawn in its alpha channel alone."""
    picture = load_seed(seed, keep_alpha=True)
    return window(picture, 0, 0) if drawn_in_alpha_only(picture) else None


def build(root: Path, seeds: list[Seed], log=print) -> dict:
    """Write the set under ``root`` (images/ and labels.json); reused when already complete."""
    labels_path = root / "labels.json"
    if labels_path.exists():
        return json.loads(labels_path.read_text())
    images = root / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    labels: dict = {"version": SET_VERSION, "images": {}, "positives": [], "negatives": []}
    translucent: list[tuple[str, str]] = []  # (image, split) of every translucent wallpaper's PNG
    for number, seed in enumerate(seeds):
        rng = random.Random(f"{SET_VERSION}-{seed.name}")
        split = split_of(seed.name)
        picture = load_seed(seed)
        original = window(picture, 0, 0)
        folder = images / seed.name
        folder.mkdir()
        stem = folder / "original"
        original.save(stem.with_suffix(".jpg"), quality=92)
        original_name = f"{seed.name}/original.jpg"
        family = [original_name]
        labels["images"][original_name] = {"family": seed.name, "split": split, "role": "original", "source": seed.source}
        for index, (kind, strength, write) in enumerate(variations(original, rng, number * 100)):
            name = write(folder / f"v{index:02d}-{kind}-{strength}".replace("%", "pc").replace(">", "gt").replace("+", "p"))
            relative = f"{seed.name}/{name}"
            labels["images"][relative] = {"family": seed.name, "split": split, "role": "variant", "kind": kind, "strength": strength}
            labels["positives"].append({"first": original_name, "second": relative, "kind": kind, "strength": strength, "split": split})
            family.append(relative)
        # Byte-identical and pixel-identical copies.
        shutil.copyfile(stem.with_suffix(".jpg"), folder / "copy-bytes.jpg")
        with Image.open(stem.with_suffix(".jpg")) as decoded:
            decoded.save(folder / "copy-pixels.png")
        copies = [("copy-bytes.jpg", "byte-identical"), ("copy-pixels.png", "pixel-identical")]
        if (drawn := translucent_original(seed)) is not None:
            # The wallpaper as shipped, its drawing in the alpha channel: the same picture as the
            # original (which shows it as dupe-scanner does), and a hard negative of every other one.
            drawn.save(folder / "translucent.png")
            copies.append(("translucent.png", "translucent"))
            translucent.append((f"{seed.name}/translucent.png", split))
        for name, strength in copies:
            relative = f"{seed.name}/{name}"
            labels["images"][relative] = {"family": seed.name, "split": split, "role": "variant", "kind": "identical", "strength": strength}
            labels["positives"].append({"first": original_name, "second": relative, "kind": "identical", "strength": strength, "split": split})
            family.append(relative)
        negatives = []
        for kind, shot in hard_negatives(picture, rng):
            relative = f"{seed.name}/other-shot-{kind}.jpg"
            shot.save(images / relative, quality=90)
            labels["images"][relative] = {"family": f"{seed.name}#{kind}", "split": split, "role": "hard-negative", "kind": kind}
            negatives.append(relative)
            for member in family:
                labels["negatives"].append({"first": member, "second": relative, "kind": kind, "split": split})
        for i, first in enumerate(negatives):
            for second in negatives[i + 1 :]:
                labels["negatives"].append({"first": first, "second": second, "kind": "shot-vs-shot", "split": split})
        log(f"  {number + 1}/{len(seeds)} {seed.name} ({split})")
    labels["negatives"] += translucent_negatives(translucent)
    labels_path.write_text(json.dumps(labels, indent=1))
    return labels


def translucent_negatives(translucent: list[tuple[str, str]]) -> list[dict]:
    """Two different translucent wallpapers: all white, apart from their alpha channels, and no
    more alike than any two pictures (they once all scored 0.95 as one blank picture).
    Scored where both lie in one split, as every labelled pair."""
    return [
        {"first": first, "second": second, "kind": "translucent-wallpapers", "split": split}
        for i, (first, split) in enumerate(translucent)
        for second, _ in translucent[i + 1 :]
    ]


def add_real_stereo(root: Path, skimage_dir: Path | None, labels: dict) -> None:
    """scikit-image's motorcycle stereo pair: a real other shot of a real scene."""
    if skimage_dir is None or not (skimage_dir / "motorcycle_right.png").exists():
        return
    family = "skimage-motorcycle_left"
    original = f"{family}/original.jpg"
    if original not in labels["images"] or f"{family}/other-shot-real-stereo.jpg" in labels["images"]:
        return
    picture = load_seed(Seed("right", "scikit-image", skimage_dir / "motorcycle_right.png"))
    relative = f"{family}/other-shot-real-stereo.jpg"
    window(picture, 0, 0).save(root / "images" / relative, quality=92)
    split = labels["images"][original]["split"]
    labels["images"][relative] = {"family": f"{family}#real-stereo", "split": split, "role": "hard-negative", "kind": "real-stereo"}
    for name, info in list(labels["images"].items()):
        if info["family"] == family:
            labels["negatives"].append({"first": name, "second": relative, "kind": "real-stereo", "split": split})
    (root / "labels.json").write_text(json.dumps(labels, indent=1))


def build_speed_set(root: Path, seeds: list[Seed], count: int = 96) -> list[Path]:
    """``count`` photographs of 12 megapixels (4000 x 3000), JPEG quality 90, for the speed columns.

    Enough of them that starting the program (imports, the worker pool) weighs little.
    """
    folder = root / f"speed-12mp-{count}"
    done = folder / ".complete"
    if done.exists():
        return sorted(folder.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    chosen = sorted(seeds, key=lambda s: -_pixels(s.path))[:count]
    for seed in chosen:
        with Image.open(seed.path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        landscape = image.width >= image.height
        target = (4000, 3000) if landscape else (3000, 4000)
        ImageOps.fit(image, target, Image.Resampling.LANCZOS).save(folder / f"{seed.name}.jpg", quality=90)
    done.write_text("ok")
    return sorted(folder.glob("*.jpg"))

