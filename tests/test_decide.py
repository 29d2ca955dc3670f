"""Decisions from the real command line (``cli.main``, and once as a process of its own):
recorded by content, honoured by scans, listed, undone."""

import json
import os
import shutil
from typing import Any

import pytest
from PIL import Image

from tests.cli import call_main, run_cli, write_settings
from tests.photos import make_photo, save


@pytest.fixture
def library(tmp_path):
    """Two photographs, each with a smaller copy, indexed and scanned: two groups."""
    photos = tmp_path / "photos"
    for name, seed in (("a", 21), ("b", 22)):
        original = save(make_photo(seed, (640, 480)), photos / f"{name}.jpg", quality=92)
        save(Image.open(original).resize((320, 240)), photos / f"{name}-small.jpg", quality=90)
    settings = write_settings(tmp_path)
    indexed = call_main("index", "--dir", str(photos), config=settings)
    assert indexed.returncode == 0, indexed.stderr
    return tmp_path, photos, settings


def scan_groups(root, settings, *options) -> list[list[str]]:
    scanned = call_main("scan", *options, config=settings)
    assert scanned.returncode == 0, scanned.stderr
    return sorted(json.loads((root / "reports" / "duplicates.json").read_text()).values())


def index(photos, settings) -> None:
    result = call_main("index", "--dir", str(photos), config=settings)
    assert result.returncode == 0, result.stderr


def read_bytes(path: bytes) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def test_not_duplicates_holds_at_every_threshold_and_after_a_rename_into_another_folder(library):
    root, photos, settings = library
    a, a_small, b, b_small = (str(photos / n) for n in ("a.jpg", "a-small.jpg", "b.jpg", "b-small.jpg"))
    assert scan_groups(root, settings) == [[a_small, a], [b_small, b]]

    decided = call_main("decide", "not-duplicates", a, a_small, config=settings)
    assert decided.returncode == 0, decided.stderr
    assert "decision 1: not-duplicates" in decided.stdout
    for threshold in ("0.5", "0.9"):
        assert [a_small, a] not in scan_groups(root, settings, "--threshold", threshold)
    assert scan_groups(root, settings) == [[b_small, b]]

    moved = root / "elsewhere" / "renamed.jpg"
    moved.parent.mkdir()
    shutil.move(a_small, moved)
    index(photos, settings)
    index(root / "elsewhere", settings)
    assert scan_groups(root, settings) == [[b_small, b]]
    listed = call_main("decide", "list", config=settings)
    assert f"{moved} (decided on {a_small})" in listed.stdout


def test_keep_is_listed_counted_by_status_and_undone(library):
    root, photos, settings = library
    keep = call_main("decide", "keep", str(photos / "a-small.jpg"), config=settings)
    assert keep.returncode == 0, keep.stderr
    assert "decision 1: keep" in keep.stdout
    again = call_main("decide", "keep", str(photos / "a-small.jpg"), config=settings)
    assert "decision 1: keep" in again.stdout and "already in force" in again.stdout
    assert "decisions: 1" in call_main("status", config=settings).stdout
    listed = call_main("decide", "list", config=settings)
    assert "1: keep" in listed.stdout and str(photos / "a-small.jpg") in listed.stdout
    scan_groups(root, settings)
    details = json.loads((root / "reports" / "duplicates.details.json").read_text())
    decided = next(g for g in details["groups"] if g["decided"])
    assert decided["suggested_keep"] == str(photos / "a-small.jpg")
    assert decided["keep_reason"] == "you decided to keep it (decision 1)"
    assert [d["id"] for d in decided["decisions"]] == [1]
    other = next(g for g in details["groups"] if not g["decided"])
    assert other["keep_reason"] == "most pixels: 640x480 against 320x240"

    undone = call_main("decide", "undo", "1", config=settings)
    assert undone.returncode == 0, undone.stderr
    assert "decisions: 0" in call_main("status", config=settings).stdout
    missing = call_main("decide", "undo", "1", config=settings)
    assert missing.returncode == 2 and "no decision 1" in missing.stderr


def test_a_decisions_file_is_imported_all_or_none_and_once(library):
    root, photos, settings = library
    scan_groups(root, settings)
    details = json.loads((root / "reports" / "duplicates.details.json").read_text())
    hashes = {m["path"]: m["content_hash"] for g in details["groups"] for m in g["members"]}
    document: dict[str, Any] = {
        "format": "dupe-scanner decisions",
        "version": 1,
        "decisions": [
            {"kind": "not-duplicates", "files": [{"content_hash": hashes[str(photos / "b.jpg")]}, {"path": str(photos / "b-small.jpg")}]},
            {"kind": "keep", "files": [{"path": str(photos / "a.jpg"), "content_hash": hashes[str(photos / "a.jpg")]}]},
        ],
    }
    exported = root / "decisions.json"
    exported.write_text(json.dumps(document))
    imported = call_main("decide", "--import", str(exported), config=settings)
    assert imported.returncode == 0, imported.stderr
    assert "decision 1: not-duplicates" in imported.stdout and "decision 2: keep" in imported.stdout
    twice = call_main("decide", "--import", str(exported), config=settings)
    assert "2 of these were already in force" in twice.stdout
    assert "decisions: 2" in call_main("status", config=settings).stdout
    assert scan_groups(root, settings) == [[str(photos / "a-small.jpg"), str(photos / "a.jpg")]]

    document["version"] = 7
    document["decisions"].append({"kind": "keep", "files": []})
    document["decisions"].append({"kind": "keep", "files": [{"path": str(root / "never-indexed.jpg")}]})
    exported.write_text(json.dumps(document))
    refused = call_main("decide", "--import", str(exported), config=settings)
    assert refused.returncode == 2
    assert "version: must be 1" in refused.stderr and "decisions[2].files: keep names exactly one file" in refused.stderr
    document["version"] = 1
    del document["decisions"][2]
    exported.write_text(json.dumps(document))
    refused = call_main("decide", "--import", str(exported), config=settings)
    assert refused.returncode == 2 and "never-indexed.jpg: not known to the state" in refused.stderr
    assert "decisions: 2" in call_main("status", config=settings).stdout


def test_deciding_about_unindexed_or_identical_files_is_refused_with_a_reason(library):
    root, photos, settings = library
    stranger = save(make_photo(23), root / "stranger.jpg")
    refused = call_main("decide", "keep", str(stranger), config=settings)
    assert refused.returncode == 2 and "run 'dupe-scanner index --dir FOLDER'" in refused.stderr
    shutil.copyfile(photos / "a.jpg", photos / "a-twin.jpg")
    index(photos, settings)
    same = call_main("decide", "not-duplicates", str(photos / "a.jpg"), str(photos / "a-twin.jpg"), config=settings)
    assert same.returncode == 2 and "identical bytes" in same.stderr
    usage = call_main("decide", config=settings)
    assert usage.returncode == 2 and "--import FILE" in usage.stderr


def test_files_in_a_preferred_folder_are_suggested_to_keep(tmp_path):
    reference = save(make_photo(24, (320, 240)), tmp_path / "reference" / "r.jpg", quality=90)
    save(Image.open(reference).resize((640, 480)), tmp_path / "photos" / "r-big.jpg", quality=92)
    settings = write_settings(tmp_path, '[keep]\npreferred_folders = ["reference"]\n')
    index(tmp_path / "reference", settings)
    index(tmp_path / "photos", settings)
    scan_groups(tmp_path, settings)
    (group,) = json.loads((tmp_path / "reports" / "duplicates.details.json").read_text())["groups"]
    assert group["suggested_keep"] == str(reference)
    assert group["keep_reason"] == f"in a preferred folder ({tmp_path.resolve() / 'reference'})"
    assert [m["never_remove"] for m in group["members"]] == [False, True]


def test_files_named_with_bytes_that_are_not_utf8_can_be_decided_on_imported_applied_and_undone(tmp_path):
    """b"caf\\xe9.jpg", as an old camera or a Samba share names it, through every verb."""
    photos = tmp_path / "photos"
    folder = os.fsencode(photos)
    original = save(make_photo(23, (640, 480)), photos / "original.jpg", quality=92)
    for name, size in ((b"caf\xe9.jpg", (480, 360)), (b"caf\xe9-small.jpg", (320, 240)), (b"th\xe9.jpg", (400, 300))):
        Image.open(original).resize(size).save(os.fsdecode(folder + b"/" + name), format="JPEG", quality=90)
    original.unlink()
    cafe, cafe_small, the = (os.fsdecode(folder + b"/" + n) for n in (b"caf\xe9.jpg", b"caf\xe9-small.jpg", b"th\xe9.jpg"))
    settings = write_settings(tmp_path, f'[[watch]]\npath = "{photos}"\n')
    index(photos, settings)
    assert scan_groups(tmp_path, settings) == [sorted([cafe, cafe_small, the])]

    # A process of its own for this one: the name's bytes go through argv and come back on stdout.
    kept = run_cli("decide", "keep", cafe, config=settings)
    assert kept.returncode == 0, kept.stderr
    assert f"decision 1: keep {photos}/caf\\xe9.jpg" in kept.stdout  # shown as status shows it
    split = call_main("decide", "not-duplicates", cafe, the, config=settings)
    assert split.returncode == 0, split.stderr
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    imported_from = os.fsdecode(os.fsencode(inbox) + b"/d\xe9cisions.json")
    document = {"format": "dupe-scanner decisions", "version": 1,
                "decisions": [{"kind": "not-duplicates", "files": [{"path": cafe_small}, {"path": the}]}]}
    with open(imported_from, "w", encoding="ascii") as handle:
        json.dump(document, handle)  # the name's byte as a \udce9 escape, as duplicates.json writes it
    imported = call_main("decide", "--import", imported_from, config=settings)
    assert imported.returncode == 0, imported.stderr
    listed = call_main("decide", "list", config=settings)
    assert listed.returncode == 0, listed.stderr
    assert "3: not-duplicates" in listed.stdout and f"from {inbox}/d\\xe9cisions.json" in listed.stdout
    assert f"{photos}/caf\\xe9-small.jpg" in listed.stdout
    assert scan_groups(tmp_path, settings) == [sorted([cafe, cafe_small])]

    before = {name: (folder + b"/" + name) for name in os.listdir(folder)}
    before = {name: read_bytes(path) for name, path in before.items()}
    applied = call_main("apply", "--move-to", str(tmp_path / "aside"), config=settings)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "moved 1 files, refused 0" in applied.stdout
    assert sorted(os.listdir(folder)) == [b"caf\xe9.jpg", b"th\xe9.jpg"]
    assert os.listdir(os.fsencode(tmp_path / "aside")) == [b"caf\xe9-small.jpg"]
    undone = call_main("undo", config=settings)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert {name: read_bytes(folder + b"/" + name) for name in os.listdir(folder)} == before
