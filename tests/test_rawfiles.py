"""Camera RAW files: read from their embedded preview, turned as the RAW says, on real DNG files.

The DNG files are written by ``tests.dng`` (nothing can be downloaded in tests, and no
package ships a sample); LibRaw reads them as it reads a camera's. The other RAW formats go
through the very same LibRaw call, so what these show holds for them, but no CR2, NEF or
other sample is tested here.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from dupe_scanner.errors import UnreadableImage
from dupe_scanner.imaging import open_upright
from dupe_scanner.pathfilter import PathFilter
from tests.cli import call_main, write_settings
from tests.dng import write_dng
from tests.photos import make_photo, save

PICTURE = make_photo(41, (640, 480))


def difference(image: Image.Image, expected: Image.Image) -> float:
    """Mean absolute difference per channel (0 to 255) once both have ``image``'s size."""
    ours = np.asarray(image.convert("RGB"), dtype=np.float64)
    theirs = np.asarray(expected.convert("RGB").resize(image.size, Image.Resampling.BOX), dtype=np.float64)
    return float(np.abs(ours - theirs).mean())


def test_a_dng_is_read_from_its_preview_turned_as_the_raw_says(tmp_path):
    stored = PICTURE.transpose(Image.Transpose.ROTATE_90)  # the camera was held upright
    path = write_dng(tmp_path / "IMG_0001.DNG", stored, preview=stored, orientation=6)  # 6: shown turned clockwise
    image, image_format, full_size = open_upright(path, draft_side=460)
    assert (image.size, image_format, full_size) == ((640, 480), "DNG", (640, 480))
    assert difference(image, PICTURE) < 5  # the preview itself, not developed sensor data


def test_a_preview_too_small_for_the_caller_gives_way_to_the_sensor_data_at_half_size(tmp_path):
    path = write_dng(tmp_path / "small-preview.dng", PICTURE, preview=PICTURE.resize((64, 48)))
    assert open_upright(path, draft_side=None)[0].size == (64, 48)  # no size asked: any preview does
    developed, image_format, full_size = open_upright(path, draft_side=200)
    assert (developed.size, image_format, full_size) == ((320, 240), "DNG", (640, 480))
    assert difference(developed, PICTURE) < 25  # developed: the tones differ a little, the picture is the same


def test_a_dng_without_a_preview_is_developed_and_turned(tmp_path):
    path = write_dng(tmp_path / "no-preview.dng", PICTURE, orientation=6)
    image, _format, full_size = open_upright(path, draft_side=160)
    assert (image.size, full_size) == ((240, 320), (480, 640))
    assert difference(image, PICTURE.transpose(Image.Transpose.ROTATE_270)) < 25


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"not a raw file at all, but a shopping list\n" * 50, "cannot read this RAW file"),
        ("truncated", "cannot read this RAW file (corrupt"),
        ("preview cut short", "the RAW file's embedded preview is corrupt"),
    ],
)
def test_a_broken_raw_file_is_one_unreadable_image_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "broken.nef"
    if content == "truncated":
        data = write_dng(tmp_path / "whole.dng", PICTURE, preview=PICTURE).read_bytes()
        path.write_bytes(data[: len(data) // 3])  # the sensor data and every IFD gone
    elif content == "preview cut short":
        write_dng(path, PICTURE, preview=PICTURE, cut_preview=5000)
    else:
        path.write_bytes(content)
    with pytest.raises(UnreadableImage) as raised:
        open_upright(path, draft_side=460)
    assert str(raised.value).startswith(f"{path}: ") and reason in str(raised.value), raised.value


def test_a_preview_whose_header_is_unreadable_gives_way_to_the_sensor_data(tmp_path):
    data = bytearray(write_dng(tmp_path / "whole.dng", PICTURE, preview=PICTURE).read_bytes())
    data[8:200] = b"\0" * 192  # the preview's JPEG header
    path = tmp_path / "bad-preview.dng"
    path.write_bytes(bytes(data))
    developed = open_upright(path, draft_side=200)[0]
    assert developed.size == (320, 240) and difference(developed, PICTURE) < 25


def test_raw_files_are_watched_whatever_the_case_of_their_suffix(tmp_path):
    wants = PathFilter(tmp_path).wants
    assert all(wants(tmp_path / name) for name in ("a.DNG", "b.cr2", "c.CR3", "d.nef", "e.ARW", "f.orf", "g.RW2", "h.raf"))


def test_a_raw_and_its_camera_jpeg_are_one_group_of_companions_that_apply_never_moves(tmp_path):
    """The real command line: index, scan, decide, apply, on a DNG, its JPEG, a copy, a broken RAW."""
    photos = tmp_path / "photos"
    raw = write_dng(photos / "IMG_0042.DNG", PICTURE, preview=PICTURE)
    jpeg = save(PICTURE, photos / "IMG_0042.JPG", quality=85)
    copy = save(PICTURE.resize((320, 240)), photos / "shared" / "holiday.jpg", quality=80)
    broken = photos / "IMG_0043.CR2"
    broken.write_bytes(os.urandom(4096))
    settings = write_settings(tmp_path, f'[[watch]]\npath = "{photos}"\n')

    indexed = call_main("index", "--dir", str(photos), config=settings)
    assert indexed.returncode == 0 and "Traceback" not in indexed.stderr, indexed.stderr
    assert "1 failed" in indexed.stdout, indexed.stdout
    status = call_main("status", config=settings)
    problems = status.stdout.split("problems:\n", 1)[1].splitlines()
    assert len(problems) == 1 and problems[0].startswith(f"  {broken}: LibRaw "), status.stdout

    scanned = call_main("scan", config=settings)
    assert scanned.returncode == 0, scanned.stderr
    (members,) = json.loads((tmp_path / "reports" / "duplicates.json").read_text()).values()
    assert sorted(members) == sorted(map(str, (raw, jpeg, copy)))
    (group,) = json.loads((tmp_path / "reports" / "duplicates.details.json").read_text())["groups"]
    assert group["companions"] == [{"raw": str(raw), "jpeg": str(jpeg)}]
    by_path = {member["path"]: member for member in group["members"]}
    assert by_path[str(raw)]["format"] == "DNG" and (by_path[str(raw)]["width"], by_path[str(raw)]["height"]) == (640, 480)
    assert by_path[str(raw)]["never_remove"] and by_path[str(jpeg)]["never_remove"]

    decided = call_main("decide", "keep", str(copy), config=settings)
    assert decided.returncode == 0, decided.stderr
    dry = call_main("apply", "--move-to", str(tmp_path / "aside"), "--dry-run", config=settings)
    assert f"group-1: keep {copy} (you decided to keep it" in dry.stdout, dry.stdout
    assert "dry run: 0 files would be moved" in dry.stdout and "left alone" not in dry.stdout
    applied = call_main("apply", "--move-to", str(tmp_path / "aside"), config=settings)
    assert (applied.returncode, applied.stdout) == (0, "nothing to move\n"), applied.stderr
    assert raw.exists() and jpeg.exists() and copy.exists()
