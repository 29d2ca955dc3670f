"""bench.copies_added: copies of a scanned library's pictures, indexed and scanned by the real command line."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import ImageEnhance

from bench.copies_added import library_pictures, measure, write_copies
from tests.cli import run_cli, write_settings
from tests.photos import make_photo, save


def test_a_copy_of_a_scanned_picture_takes_its_originals_stored_verdicts(tmp_path):
    library = tmp_path / "library"
    photo = make_photo(41, size=(800, 600))
    save(photo, library / "original.png")
    save(photo.crop((100, 50, 800, 600)), library / "crop.png")
    save(ImageEnhance.Brightness(photo).enhance(1.3), library / "brighter.png")
    run = tmp_path / "run"
    run.mkdir()
    config = write_settings(run)
    for command in (["index", "--dir", str(library)], ["scan"]):
        assert run_cli(*command, config=config).returncode == 0

    pictures = library_pictures(run / "state" / "state.db")
    copies = write_copies(pictures, 1, tmp_path / "copies")
    row = measure("this code", Path(sys.executable), run, copies)

    assert sorted(path.name for path in pictures) == ["brighter.png", "crop.png", "original.png"]
    assert len(list(copies.glob("*.jpg"))) == 1
    # Whichever picture was copied, the copy is its twin, and the twin's pairs with the other
    # two were stored by the scan before: they are taken, but for one near the line
    # (``twins.UNSURE``: a crop of a brightened picture only just verifies).
    assert row["candidates"] == 3 and row["taken"] >= 1
    assert row["verified"] >= 3 + 2  # the library's pairs, and the copy's with its twin and one more at least
    assert not (tmp_path / "run-copies-run").exists()  # the copy of the run is let go
