"""Bad input through the real one-shot command line: a clear line, nothing lost, the next run works.

Broken images, things that only look like images (a FIFO, a folder, a dangling symlink),
file names that are hostile or not UTF-8, a full disk under the reports or the state, a
state that is garbage or held locked, and bad arguments. The library of bad files is
indexed and scanned by the command as a subprocess (so whatever its analysis workers print
is seen too), and so is a folder named with bytes that are not UTF-8; the other commands
call ``cli.main`` in this process, on real files. A failure must be one ``dupe-scanner:``
line on stderr, never a traceback, and a follow-up command must work. Races (a file vanishing or turning into a
FIFO between the walk and the analysis) cannot be timed across a process boundary and are
driven in-process through the real ``Indexer``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import unicodedata
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.cli import call_main, run_cli, write_settings
from tests.disks import fill
from tests.photos import make_photo, save

ODD_NAMES = [
    "with space.jpg",
    "quote's \"double\".jpg",
    "new\nline.jpg",
    "-leading-dash.jpg",
    unicodedata.normalize("NFC", "café.jpg"),
    unicodedata.normalize("NFD", "café.jpg"),
    "é" * 125 + ".jpg",  # 254 bytes: as long as a name may be
    "href<img src=x onerror=alert(1)>.jpg",
]
XSS = "<img src=x onerror=alert(1)>"
NOT_UTF8_NAMES = (b"/latin1-\xe9t\xe9.jpg", b"/dossier-\xe9/inside.jpg")  # as an old camera or Samba share wrote them


def png_header(width: int, height: int, colour_type: int = 0) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds almost no pixel data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bad_crc_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[29] ^= 0xFF  # the IHDR chunk's CRC
    return bytes(data)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failed command prints about why; no traceback anywhere."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("dupe-scanner:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def clean(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def file_rows(state: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(state) as connection:
        return {path: (state_, error) for path, state_, error in connection.execute("SELECT path, state, error FROM files")}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """One folder with every kind of bad file and odd name, indexed and scanned once."""
    root = tmp_path_factory.mktemp("bad-input")
    photos = root / "photos"
    picture = make_photo(1, (400, 300))
    good = save(picture, photos / "good.jpg", quality=90)
    data = good.read_bytes()
    for name in ODD_NAMES:
        (photos / name).write_bytes(data)
    (photos / "half.jpg").write_bytes(data[: len(data) // 2])
    (photos / "bad-crc.png").write_bytes(bad_crc_png(picture))
    (photos / "zero.jpg").write_bytes(b"")
    (photos / "text.jpg").write_text("I am a shopping list, not a picture\n")
    (photos / "bomb.png").write_bytes(png_header(100_000, 100_000, colour_type=2))
    (photos / "huge.png").write_bytes(png_header(10_000, 10_000))  # 100 MP: big, but allowed
    (photos / "broken\nname.jpg").write_bytes(data[:500])
    os.mkfifo(photos / "fifo.jpg")
    save(picture, photos / "folder.jpg" / "inside.jpg", quality=90)
    (photos / "dangling.jpg").symlink_to(photos / "nowhere.jpg")
    os.mkdir(os.fsencode(photos) + b"/dossier-\xe9")
    for raw_name in NOT_UTF8_NAMES:
        with open(os.fsencode(photos) + raw_name, "wb") as handle:
            handle.write(data)
    settings = write_settings(root)
    indexed = run_cli("index", "--dir", str(photos), config=settings, timeout=120)
    status = run_cli("status", config=settings, timeout=60)
    scanned = run_cli("scan", config=settings, timeout=120)
    return root, photos, settings, indexed, status, scanned


def test_indexing_goes_through_every_bad_file_and_exits_0(library):
    root, _photos, _, indexed, _, scanned = library
    clean(indexed)
    clean(scanned)
    assert "7 failed" in indexed.stdout
    rows = file_rows(root / "state" / "state.db")
    reasons = {Path(path).name: error or "" for path, (state, error) in rows.items() if state == "failed"}
    assert "truncated" in reasons["half.jpg"]
    assert "Pillow" in reasons["bad-crc.png"]
    assert "empty file" in reasons["zero.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert "index.max_image_pixels" in reasons["bomb.png"]
    assert "truncated" in reasons["broken\nname.jpg"]


def test_a_huge_image_the_settings_allow_is_not_refused_as_a_bomb(library):
    # Pillow's own limit (89 MP) used to refuse it although index.max_image_pixels is 250 MP.
    root, photos, *_ = library
    state, error = file_rows(root / "state" / "state.db")[str(photos / "huge.png")]
    assert state == "failed" and error is not None and "max_image_pixels" not in error and "too large" not in error


def test_a_fifo_a_folder_and_a_dangling_symlink_named_jpg_neither_hang_nor_fail(library):
    root, photos, _, _indexed, *_ = library
    rows = file_rows(root / "state" / "state.db")
    assert str(photos / "fifo.jpg") not in rows
    assert str(photos / "dangling.jpg") not in rows
    assert rows[str(photos / "folder.jpg" / "inside.jpg")][0] == "indexed"


def test_odd_names_are_indexed_and_reported_exactly(library):
    root, photos, *_ = library
    report = json.loads((root / "reports" / "duplicates.json").read_text(encoding="utf-8"))
    assert len(report) == 1
    (members,) = report.values()
    expected = {str(photos / name) for name in ["good.jpg", *ODD_NAMES]} | {str(photos / "folder.jpg" / "inside.jpg")}
    expected |= {os.fsdecode(os.fsencode(photos) + name) for name in NOT_UTF8_NAMES}
    assert set(members) == expected
    nfc, nfd = (str(photos / unicodedata.normalize(form, "café.jpg")) for form in ("NFC", "NFD"))
    assert nfc != nfd and nfc in members and nfd in members


def test_a_hostile_file_name_is_inert_in_the_html_report(library):
    root, *_ = library
    html = (root / "reports" / "duplicates.html").read_text(encoding="utf-8")
    assert "onerror=alert(1)" in html  # the name is there...
    assert XSS not in html  # ...but never as markup


def test_names_that_are_not_utf8_are_indexed_stored_losslessly_and_shown_as_escapes(library):
    root, photos, _, indexed, *_ = library
    assert "not valid UTF-8" not in indexed.stderr
    paths = [os.fsdecode(os.fsencode(photos) + name) for name in NOT_UTF8_NAMES]
    with sqlite3.connect(root / "state" / "state.db") as connection:  # as stored: each byte escaped after a NUL
        stored = dict(connection.execute("SELECT path, state FROM files WHERE path LIKE '%latin1-%' OR path LIKE '%dossier-%'"))
    assert stored == {f"{photos}/latin1-\0e9t\0e9.jpg": "indexed", f"{photos}/dossier-\0e9/inside.jpg": "indexed"}
    report = json.loads((root / "reports" / "duplicates.json").read_bytes())
    (members,) = report.values()
    assert {os.fsencode(path) for path in members} >= {os.fsencode(path) for path in paths}  # the bytes on disk
    from tests.test_reports import page_data

    tooltips = {node["title"][0] for node in page_data(root / "reports" / "duplicates.html")["nodes"]}
    assert {f"{photos}/latin1-\\xe9t\\xe9.jpg", f"{photos}/dossier-\\xe9/inside.jpg"} <= tooltips

    from dupe_scanner.pathfilter import PathFilter  # the service's watcher events go through this filter

    assert PathFilter(photos).wants(Path(os.fsdecode(os.fsencode(photos) + b"/x-\xff.jpg")))


def test_a_broken_image_whose_name_is_not_utf8_is_listed_in_status_with_its_reason(tmp_path):
    photos = tmp_path / "photos"
    good = save(make_photo(15, (300, 200)), photos / "good.jpg", quality=90).read_bytes()
    with open(os.fsencode(photos) + b"/cass\xe9.jpg", "wb") as handle:
        handle.write(good[: len(good) // 2])
    with open(os.fsencode(photos) + b"/r\xe9sum\xe9.jpg", "wb") as handle:
        handle.write(good)
    settings = write_settings(tmp_path)
    assert "1 failed" in clean(call_main("index", "--dir", str(photos), config=settings, timeout=120)).stdout
    status = clean(call_main("status", config=settings, timeout=60))
    problems = status.stdout.split("problems:\n", 1)[1].splitlines()
    assert len(problems) == 1 and problems[0].startswith(f"  {photos}/cass\\xe9.jpg: corrupt or truncated image")
    clean(call_main("scan", config=settings, timeout=120))
    (members,) = json.loads((tmp_path / "reports" / "duplicates.json").read_bytes()).values()
    assert sorted(os.fsencode(path) for path in members) == [os.fsencode(photos) + b"/good.jpg", os.fsencode(photos) + b"/r\xe9sum\xe9.jpg"]
    again = clean(call_main("index", "--dir", str(photos), config=settings, timeout=60))
    assert "0 new, 0 changed, 0 gone; 0 to index" in again.stdout  # the names came back from the state as they are on disk


def test_status_lists_each_problem_on_one_line(library):
    _, photos, _, _, status, _ = library
    clean(status)
    problems = status.stdout.split("problems:\n", 1)[1].splitlines()
    assert len(problems) == 7
    assert any(line.startswith(f"  {photos}/broken\\nname.jpg: corrupt or truncated image") for line in problems)
    assert all(line.count(str(photos)) == 1 for line in problems)  # the path is not said twice


def test_the_state_stays_usable_after_bad_input(library):
    _, photos, settings, *_ = library
    again = clean(call_main("index", "--dir", str(photos), config=settings, timeout=60))
    assert "0 new, 0 changed, 0 gone; 0 to index" in again.stdout
    retried = clean(call_main("index", "--dir", str(photos), "--retry-failed", config=settings, timeout=120))
    assert "7 to index" in retried.stdout and "7 failed" in retried.stdout


@pytest.mark.parametrize("threshold", ["0", "1.5", "-1", "nan", "high"])
def test_a_threshold_out_of_range_is_a_usage_error(tmp_path, threshold):
    result = call_main("scan", "--threshold", threshold, config=write_settings(tmp_path), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # argparse prints the usage, then one line: "dupe-scanner scan: error: argument --threshold: ..."
    assert result.stderr.strip().splitlines()[-1].startswith("dupe-scanner scan: error: argument --threshold")
    assert not (tmp_path / "state").exists()  # refused before anything was opened


def test_dir_that_is_a_file_is_a_usage_error(tmp_path):
    settings = write_settings(tmp_path)
    (tmp_path / "a-file.jpg").write_bytes(b"x")
    result = call_main("index", "--dir", str(tmp_path / "a-file.jpg"), config=settings, timeout=60)
    assert result.returncode == 2 and "not a folder" in one_error_line(result)


def test_a_folder_whose_own_name_is_not_utf8_can_be_indexed(tmp_path):
    settings = write_settings(tmp_path)
    folder = os.fsencode(tmp_path) + b"/fotos-\xe9"
    os.mkdir(folder)
    save(make_photo(16, (200, 150)), Path(os.fsdecode(folder + b"/a.jpg")))
    command: list[str | bytes] = [sys.executable, "-m", "dupe_scanner", "index", "--dir", folder, "--config", str(settings)]
    result = clean(subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path))
    assert f"{tmp_path}/fotos-\\xe9: 1 new" in result.stdout and "1 analysed" in result.stdout  # shown, not raw bytes


def test_a_folder_with_a_leading_dash_can_be_indexed(tmp_path):
    save(make_photo(3, (200, 150)), tmp_path / "-photos" / "a.jpg")
    result = clean(call_main("index", "--dir=-photos", config=write_settings(tmp_path), timeout=60))
    assert "1 new" in result.stdout


def test_a_state_that_is_not_a_database_is_one_clear_line_and_left_alone(tmp_path):
    photos = tmp_path / "photos"
    save(make_photo(4, (200, 150)), photos / "a.jpg")
    settings = write_settings(tmp_path)
    state = tmp_path / "state" / "state.db"
    state.parent.mkdir()
    garbage = os.urandom(8192)
    state.write_bytes(garbage)
    for command in (["status"], ["index", "--dir", str(photos)], ["clear", "--yes"]):
        result = call_main(*command, config=settings, timeout=60)
        assert result.returncode == 1
        line = one_error_line(result)
        assert str(state) in line and "not a database" in line and "move it aside" in line
    assert state.read_bytes() == garbage
    state.rename(state.with_name("state.db.garbage"))
    assert "1 new" in clean(call_main("index", "--dir", str(photos), config=settings, timeout=60)).stdout


def test_a_state_locked_by_another_process_is_one_clear_line(tmp_path):
    photos = tmp_path / "photos"
    save(make_photo(5, (200, 150)), photos / "a.jpg")
    settings = write_settings(tmp_path)
    clean(call_main("index", "--dir", str(photos), config=settings, timeout=60))
    save(make_photo(6, (200, 150)), photos / "b.jpg")
    locker = sqlite3.connect(tmp_path / "state" / "state.db", isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        locker.execute("UPDATE meta SET value = value")
        clean(call_main("status", config=settings, timeout=60))  # reading needs no lock
        result = call_main("index", "--dir", str(photos), "--lock-wait", "2", config=settings, timeout=90)
        assert result.returncode == 1
        line = one_error_line(result)
        assert "locked by another process for 2 s" in line and str(tmp_path / "state" / "state.db") in line
    finally:
        locker.rollback()
        locker.close()
    assert "1 new" in clean(call_main("index", "--dir", str(photos), config=settings, timeout=60)).stdout


def test_a_full_reports_disk_is_one_line_keeps_the_previous_reports_and_the_next_scan_works(tmp_path, tiny_disk):
    photos = tmp_path / "photos"
    first = save(make_photo(7, (300, 200)), photos / "a.jpg")
    shutil.copyfile(first, photos / "a-copy.jpg")
    settings = write_settings(tmp_path)
    reports = tiny_disk(tmp_path / "reports", "2m")
    clean(call_main("index", "--dir", str(photos), config=settings, timeout=60))
    clean(call_main("scan", config=settings, timeout=60))
    before = {path.name: path.read_bytes() for path in reports.iterdir() if path.is_file()}  # not thumbnails/

    shutil.copyfile(first, photos / "a-third.jpg")
    clean(call_main("index", "--dir", str(photos), config=settings, timeout=60))
    filler = fill(reports, 16 * 1024)
    result = call_main("scan", config=settings, timeout=60)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "no space left" in line and "previous version is left unchanged" in line
    names = sorted(path.name for path in reports.iterdir() if path != filler and path.is_file())
    assert names == sorted(before)  # no temporary file left behind
    for name, content in before.items():  # all or none: every report is still the previous one
        assert (reports / name).read_bytes() == content, name
    status = clean(call_main("status", config=settings, timeout=60))
    assert "no space left" in status.stdout  # the failed scan is on record

    filler.unlink()
    clean(call_main("scan", config=settings, timeout=60))
    report = json.loads((reports / "duplicates.json").read_text())
    assert [len(paths) for paths in report.values()] == [3]


def test_a_full_state_disk_is_one_line_loses_nothing_and_the_next_run_finishes(tmp_path, tiny_disk):
    photos = tmp_path / "photos"
    for seed in range(3):
        save(make_photo(20 + seed, (300, 200)), photos / f"old-{seed}.jpg")
    settings = write_settings(tmp_path)
    state_folder = tiny_disk(tmp_path / "state", "4m")
    clean(call_main("index", "--dir", str(photos), config=settings, timeout=60))
    for seed in range(20):
        save(make_photo(40 + seed, (300, 200)), photos / f"new-{seed}.jpg")
    filler = fill(state_folder, 160 * 1024)
    result = call_main("index", "--dir", str(photos), config=settings, timeout=120)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "the disk is full" in line and str(state_folder / "state.db") in line

    filler.unlink()
    counts = dict(sqlite3.connect(state_folder / "state.db").execute("SELECT state, count(*) FROM files GROUP BY state"))
    assert sum(counts.values()) == 23 and counts.get("pending", 0) > 0  # every file known, the rest queued
    clean(call_main("index", "--dir", str(photos), config=settings, timeout=120))
    clean(call_main("scan", config=settings, timeout=120))
    counts = dict(sqlite3.connect(state_folder / "state.db").execute("SELECT state, count(*) FROM files GROUP BY state"))
    assert counts == {"indexed": 23}


# -- races, in-process: the real Indexer and embedded backend on real files ---------------------


@pytest.fixture
def parts(tmp_path):
    from dupe_scanner.composition import components
    from dupe_scanner.settings import load_settings

    settings = load_settings(write_settings(tmp_path, "[index]\nworkers = 1\n"))
    with components(settings) as built:
        yield built


def _queue(parts, folder: Path):
    from dupe_scanner.pathfilter import PathFilter
    from dupe_scanner.reconcile import reconcile
    from dupe_scanner.store import files as file_store
    from dupe_scanner.store.database import read_transaction

    reconcile(parts.engine, PathFilter(folder))
    with read_transaction(parts.engine) as connection:
        return file_store.pending_under(connection, str(folder))


def _run(indexer, jobs, seconds: float = 60):
    """``indexer.run(jobs)`` in a thread, so a hang fails the test instead of stopping it."""
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(summary=indexer.run(jobs)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the indexer hung"
    return outcome["summary"]


def test_a_file_deleted_after_the_walk_is_gone_not_failed(tmp_path, parts):
    from dupe_scanner.indexer import Outcome

    photos = tmp_path / "photos"
    save(make_photo(9, (200, 150)), photos / "a.jpg")
    save(make_photo(10, (200, 150)), photos / "b.jpg")
    jobs = _queue(parts, photos)
    (photos / "a.jpg").unlink()

    class DeletingBackend:  # b.jpg vanishes after it was hashed, before it is decoded
        def __getattr__(self, name):
            return getattr(parts.backend, name)

        def index(self, content_hash, path):
            path.unlink()
            return parts.backend.index(content_hash, path)

    parts.indexer.backend = DeletingBackend()
    summary = _run(parts.indexer, jobs)
    assert summary.counts[Outcome.VANISHED] == 2 and summary.counts[Outcome.FAILED] == 0
    assert {state for state, _ in file_rows(tmp_path / "state" / "state.db").values()} == {"gone"}


def test_a_file_replaced_by_a_fifo_after_the_walk_fails_without_hanging(tmp_path, parts):
    from dupe_scanner.errors import UnreadableImage
    from dupe_scanner.imaging import open_upright
    from dupe_scanner.indexer import Outcome

    photos = tmp_path / "photos"
    save(make_photo(11, (200, 150)), photos / "a.jpg")
    jobs = _queue(parts, photos)
    (photos / "a.jpg").unlink()
    os.mkfifo(photos / "a.jpg")
    summary = _run(parts.indexer, jobs)
    assert summary.counts[Outcome.FAILED] == 1
    assert "named pipe" in (file_rows(tmp_path / "state" / "state.db")[str(photos / "a.jpg")][1] or "")
    with pytest.raises(UnreadableImage, match="named pipe"):  # the decoder refuses it too, at once
        open_upright(photos / "a.jpg")


# -- images with a side of one pixel, and analysis errors nobody expected ----------------------


def strip(width: int, height: int, seed: int) -> Image.Image:
    """A noisy picture ``width`` x ``height``: detail for every step of the analysis to chew on."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_images_with_a_side_of_one_pixel_are_indexed_and_scanned_beside_the_others(tmp_path):
    photos = tmp_path / "photos"
    save(make_photo(12, (300, 200)), photos / "photo.jpg", quality=90)
    sizes = {"dot.png": (1, 1), "column.png": (1, 500), "row.png": (3000, 2), "line.png": (500, 1)}
    for seed, (name, size) in enumerate(sizes.items()):
        save(strip(*size, seed), photos / name)
    settings = write_settings(tmp_path)
    indexed = clean(call_main("index", "--dir", str(photos), config=settings, timeout=120))
    assert "5 analysed" in indexed.stdout
    rows = file_rows(tmp_path / "state" / "state.db")
    assert {Path(path).name: state for path, (state, _) in rows.items()} == dict.fromkeys([*sizes, "photo.jpg"], "indexed")
    clean(call_main("scan", config=settings, timeout=120))
    assert json.loads((tmp_path / "reports" / "duplicates.json").read_text(encoding="utf-8")) == {}


def _analyse_in_process(parts):
    """The real backend, its analysis run in this process so a test can break it."""
    from dupe_scanner.analysis.fingerprints import analyse_file
    from dupe_scanner.backends.base import ImageInfo

    class InProcessBackend:
        def __getattr__(self, name):
            return getattr(parts.backend, name)

        def index(self, content_hash, path):
            analysis = analyse_file(str(path), parts.backend.max_image_pixels)
            parts.backend._store(content_hash, analysis.blob)
            return ImageInfo(analysis.width, analysis.height, analysis.format)

    return InProcessBackend()


def test_an_unexpected_error_analysing_one_file_fails_that_file_with_a_reason_and_not_the_others(tmp_path, parts, monkeypatch):
    import cv2

    from dupe_scanner.analysis import fingerprints
    from dupe_scanner.indexer import Outcome

    photos = tmp_path / "photos"
    save(make_photo(13, (200, 150)), photos / "fine.jpg")
    save(make_photo(14, (210, 150)), photos / "breaks.jpg")
    real_features_of = fingerprints.features_of

    def features_of(image, full_size):
        if tuple(full_size) == (210, 150):
            raise cv2.error("OpenCV(5.0.0) resize.cpp:4220: error: (-215:Assertion failed) inv_scale_x > 0\n in function 'resize'")
        return real_features_of(image, full_size)

    monkeypatch.setattr(fingerprints, "features_of", features_of)
    parts.indexer.backend = _analyse_in_process(parts)
    summary = _run(parts.indexer, _queue(parts, photos))
    assert summary.counts[Outcome.ANALYSED] == 1 and summary.counts[Outcome.FAILED] == 1
    rows = file_rows(tmp_path / "state" / "state.db")
    assert rows[str(photos / "fine.jpg")] == ("indexed", None)
    state, reason = rows[str(photos / "breaks.jpg")]
    assert state == "failed" and reason is not None
    assert reason.startswith(f"{photos / 'breaks.jpg'}: the 210x150 image was read but could not be analysed (error: OpenCV")
    assert "\n" not in reason and "--retry-failed" in reason


# -- pictures with little information: compared on what a viewer sees, never exact on colour alone --


def alpha_only(alpha: np.ndarray) -> Image.Image:
    """A translucent wallpaper: every pixel white, the drawing in the alpha channel alone."""
    white = np.full_like(alpha, 255)
    return Image.fromarray(np.dstack([white, white, white, alpha]), "RGBA")


def near_uniform(step_along: int) -> Image.Image:
    """Light grey with a step of one level across one axis: too faint to fingerprint."""
    grey = np.full((450, 600), 200, dtype=np.uint8)
    half = [slice(None), slice(None)]
    half[step_along] = slice(grey.shape[step_along] // 2, None)
    grey[tuple(half)] += 1
    return Image.fromarray(grey).convert("RGB")


def scored_pairs(root: Path) -> dict[frozenset[str], tuple[float, str]]:
    details = json.loads((root / "reports" / "duplicates.details.json").read_text(encoding="utf-8"))
    return {frozenset(Path(p[side]).name for side in ("first", "second")): (p["score"], p["kind"]) for g in details["groups"] for p in g["pairs"]}


def test_pictures_with_little_information_are_not_exact_duplicates_unless_their_pixels_are(tmp_path):
    photos = tmp_path / "photos"
    y, x = np.mgrid[0:600, 0:800] / 800
    waves = 90 + 80 * np.sin(12 * x + 4 * np.sin(6 * y))
    rings = 90 + 80 * np.sin(40 * np.hypot(x - 0.4, y - 0.3))
    save(alpha_only(waves.astype(np.uint8)), photos / "waves.png")
    save(alpha_only(rings.astype(np.uint8)), photos / "rings.png")
    save(near_uniform(step_along=0), photos / "faint-rows.png")
    save(near_uniform(step_along=1), photos / "faint-columns.png")
    plain = Image.new("RGB", (600, 450), (90, 120, 150))
    save(plain, photos / "plain.png")
    save(plain, photos / "plain.bmp")  # the same pixels in other bytes
    settings = write_settings(tmp_path)
    assert "6 analysed" in clean(call_main("index", "--dir", str(photos), config=settings, timeout=120)).stdout
    clean(call_main("scan", config=settings, timeout=120))
    pairs = scored_pairs(tmp_path)
    assert frozenset(("waves.png", "rings.png")) not in pairs  # different drawings, each over grey
    faint = pairs.get(frozenset(("faint-rows.png", "faint-columns.png")), (0.0, "none"))
    assert faint[0] < 0.9 and faint[1] != "exact"  # one colour, yet not known to be one picture
    assert pairs[frozenset(("plain.png", "plain.bmp"))] == (1.0, "exact")
    assert not any("plain" in name for pair in pairs if pair != {"plain.png", "plain.bmp"} for name in pair)


def test_a_transparent_picture_and_its_copy_flattened_on_white_stay_exact_duplicates(tmp_path):
    # Over grey (what the translucent wallpapers need) its transparent parts would not match the copy.
    photos = tmp_path / "photos"
    logo = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    logo.paste(make_photo(17, (300, 200)), (150, 100))
    save(logo, photos / "logo.png")
    save(Image.alpha_composite(Image.new("RGBA", logo.size, "white"), logo).convert("RGB"), photos / "logo.jpg", quality=92)
    settings = write_settings(tmp_path)
    clean(call_main("index", "--dir", str(photos), config=settings, timeout=120))
    clean(call_main("scan", config=settings, timeout=120))
    score, kind = scored_pairs(tmp_path)[frozenset(("logo.png", "logo.jpg"))]
    assert kind == "exact" and score >= 0.9
