"""Building blocks of the report tests: hostile file names, real images made with Pillow,
entries and groups built directly (the grouping rule has its own tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from dupe_scanner.groups import DuplicateGroup, FileEntry, FilePair
from dupe_scanner.settings import ReportSettings

# A name that runs script if it ever reaches HTML: the canary marks the page when it does.
CANARY = "href<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">.jpg"
ALERT = "href<img src=x onerror=alert(1)>.jpg"
# No file name can hold "/", so "</script>" is spread over folders.
SCRIPT_BREAKER = ("<", "script><script>document.body.setAttribute('data-pwned','2')<", "script> <!--.jpg")
OTHER_NAMES = ("q\"uote's & ampersand.png", "ünïcödé 写真.jpg", "new\nline.jpg", "plain.jpg", "big.jpg")

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 2, 8, 30, 0, tzinfo=UTC)
SETTINGS = ReportSettings(html_max_nodes=2000, thumbnail_size=64)




def make_image(path: Path, size=(400, 300), color=(200, 80, 40), fmt=None, orientation=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 20):  # some structure, so thumbnails are real pictures
        for y in range(0, size[1] // 2):
            image.putpixel((x, y), (255, 255, 255))
    options = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    fmt = fmt or ("PNG" if path.suffix.lower() == ".png" else "JPEG")
    image.save(path, format=fmt, **options)
    return path


def entry(path: Path, width: int = 400, height: int = 300, fmt: str = "JPEG", content_hash: str | None = None) -> FileEntry:
    stat = path.stat()
    return FileEntry(
        path=str(path),
        size=stat.st_size,
        mtime=stat.st_mtime,
        width=width,
        height=height,
        format=fmt,
        content_hash=content_hash or f"hash-{path.name}",
    )


def group(anchor: FileEntry, others: list[FileEntry], scores: list[float], extra: dict | None = None) -> DuplicateGroup:
    """A group whose members match the anchor with ``scores``; ``extra`` adds pairs between others."""
    pairs = [FilePair(min(anchor.path, o.path), max(anchor.path, o.path), s) for o, s in zip(others, scores, strict=True)]
    for (a, b), score in (extra or {}).items():
        pairs.append(FilePair(min(a.path, b.path), max(a.path, b.path), score))
    members = tuple(sorted([anchor, *others], key=lambda m: m.path))
    return DuplicateGroup(anchor=anchor.path, members=members, pairs=tuple(sorted(pairs)))
