"""apply and undo from the real command line (``cli.main``; a process of its own where one is killed mid-way):
only decided groups, verified moves, a journal undo replays."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from dupe_scanner import relocate
from dupe_scanner.indexer import content_hash
from tests.cli import call_main, write_settings
from tests.photos import make_photo, save


@pytest.fixture
def library(tmp_path):
    """A watched folder: a.jpg with a smaller copy and a byte-identical one; b.jpg with a copy."""
    photos = tmp_path / "photos"
    a = save(make_photo(31, (640, 480)), photos / "a.jpg", quality=92)
    save(Image.open(a).resize((320, 240)), photos / "copies" / "a-small.jpg", quality=90)
    shutil.copyfile(a, photos / "copies" / "a-copy.jpg")
    b = save(make_photo(32, (640, 480)), photos / "b.jpg", quality=92)
    save(Image.open(b).resize((320, 240)), photos / "b-small.jpg", quality=90)
    settings = write_settings(tmp_path, f'[[watch]]\npath = "{photos}"\n')
    for verb in (("index", "--dir", str(photos)), ("scan",)):
        result = call_main(*verb, config=settings)
        assert result.returncode == 0, result.stderr
    return tmp_path, photos, settings


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def keep_a(photos, settings) -> None:
    decided = call_main("decide", "keep", str(photos / "a.jpg"), config=settings)
    assert decided.returncode == 0, decided.stderr


def test_a_dry_run_says_what_it_would_move_and_changes_nothing(library):
    root, photos, settings = library
    keep_a(photos, settings)
    before = snapshot(root)
    dry = call_main("apply", "--move-to", str(root / "aside"), "--dry-run", config=settings)
    assert dry.returncode == 0, dry.stderr
    assert f"keep {photos / 'a.jpg'} (you decided to keep it (decision 1))" in dry.stdout
    assert f"would move {photos / 'copies' / 'a-small.jpg'} -> {root / 'aside' / 'copies' / 'a-small.jpg'}" in dry.stdout
    assert f"would move {photos / 'copies' / 'a-copy.jpg'}" in dry.stdout
    assert "left alone: 1 groups without a keep decision" in dry.stdout
    assert snapshot(root) == before
    assert not (root / "aside").exists() and not (root / "state" / "journal").exists()


def test_apply_moves_only_the_decided_group_s_others_and_undo_restores_every_byte(library):
    root, photos, settings = library
    keep_a(photos, settings)
    before = snapshot(photos)
    applied = call_main("apply", "--move-to", str(root / "aside"), config=settings)
    assert applied.returncode == 0, applied.stderr
    assert "moved 2 files, refused 0" in applied.stdout
    assert sorted(snapshot(photos)) == ["a.jpg", "b-small.jpg", "b.jpg"]
    assert snapshot(root / "aside") == {name: before[name] for name in ("copies/a-copy.jpg", "copies/a-small.jpg")}
    (journal,) = (root / "state" / "journal").glob("apply-*.jsonl")
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert events == ["apply", "intent", "done", "intent", "done", "finished"]
    rescanned = call_main("scan", config=settings)
    assert "Found 1 duplicate groups" in rescanned.stdout

    undone = call_main("undo", config=settings)
    assert undone.returncode == 0, undone.stderr
    assert snapshot(photos) == before
    assert snapshot(root / "aside") == {}
    assert not journal.exists() and journal.with_name(journal.name + ".undone").exists()
    assert "nothing to undo" in call_main("undo", config=settings).stdout


def test_a_file_changed_since_it_was_indexed_is_refused_and_stays(library):
    root, photos, settings = library
    keep_a(photos, settings)
    small = photos / "copies" / "a-small.jpg"
    stat = small.stat()
    data = bytearray(small.read_bytes())
    data[-3] ^= 0xFF  # same size, same time, other bytes: only the hash can tell
    small.write_bytes(bytes(data))
    os.utime(small, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    applied = call_main("apply", "--move-to", str(root / "aside"), config=settings)
    assert applied.returncode == 1
    assert f"refused {small}: it changed since it was indexed (its bytes)" in applied.stdout
    assert small.read_bytes() == bytes(data)
    assert sorted(snapshot(root / "aside")) == ["copies/a-copy.jpg"]


def test_undo_finishes_an_apply_a_crash_interrupted(library):
    """A journal as a crash leaves it: three intents, none done, each file at another step."""
    root, photos, settings = library
    before = snapshot(photos)
    aside = root / "aside"
    moved = photos / "copies" / "a-small.jpg"  # crashed after the move, before "done"
    linked = photos / "copies" / "a-copy.jpg"  # crashed between the link and the unlink
    untouched = photos / "b-small.jpg"  # crashed while copying: a partial copy beside the destination
    intents = []
    for source in (moved, linked, untouched):
        destination = aside / source.relative_to(photos)
        intents.append({"event": "intent", "source": str(source), "destination": str(destination), "content_hash": content_hash(source)})
    (aside / "copies").mkdir(parents=True)
    os.link(moved, aside / "copies" / "a-small.jpg")
    moved.unlink()
    os.link(linked, aside / "copies" / "a-copy.jpg")
    relocate.part_path(aside / "b-small.jpg").write_bytes(untouched.read_bytes()[:100])
    journal = root / "state" / "journal" / "apply-20261130T120000-000.jsonl"
    journal.parent.mkdir()
    lines = [json.dumps({"event": "apply", "move_to": str(aside)})] + [json.dumps(i) for i in intents]
    journal.write_text("\n".join(lines) + '\n{"event": "done", "sou')  # the last line cut short

    undone = call_main("undo", config=settings)
    assert undone.returncode == 0, undone.stderr
    assert snapshot(photos) == before
    assert snapshot(aside) == {}


def test_the_destination_must_lie_outside_the_watched_folders(library):
    _root, photos, settings = library
    refused = call_main("apply", "--move-to", str(photos / "aside"), config=settings)
    assert refused.returncode == 2 and "inside the watched folder" in refused.stderr


def test_across_filesystems_a_move_copies_verifies_then_removes(tmp_path, monkeypatch):
    source = tmp_path / "a" / "photo.jpg"
    save(make_photo(33, (64, 48)), source)
    data, mtime = source.read_bytes(), source.stat().st_mtime_ns
    digest = content_hash(source)

    def no_link(*_args, **_kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    real_link = os.link
    monkeypatch.setattr(relocate.os, "link", lambda s, d, **kw: no_link() if Path(s) == source else real_link(s, d))
    destination = tmp_path / "b" / "photo.jpg"
    assert relocate.move_file(source, destination, digest) == "copied"
    assert not source.exists() and destination.read_bytes() == data and destination.stat().st_mtime_ns == mtime


def test_a_copy_that_does_not_verify_leaves_the_source_alone(tmp_path, monkeypatch):
    source = tmp_path / "a" / "photo.jpg"
    save(make_photo(34, (64, 48)), source)
    data = source.read_bytes()
    monkeypatch.setattr(relocate.os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EXDEV, "cross-device")))
    destination = tmp_path / "b" / "photo.jpg"
    with pytest.raises(relocate.MoveRefused, match="does not match the original"):
        relocate.move_file(source, destination, "0" * 64)
    assert source.read_bytes() == data
    assert list((tmp_path / "b").iterdir()) == []


@pytest.fixture
def big_library(tmp_path):
    """Three decided groups of 41 byte-identical pictures (cheap to index: hashed, analysed
    once), so that apply has 120 files to move and a kill can land in the middle."""
    photos = tmp_path / "photos"
    for seed in range(3):
        original = save(make_photo(50 + seed, (1200, 900)), photos / f"p{seed}" / "original.jpg", quality=98)
        for number in range(40):
            copy = photos / f"p{seed}" / f"copies-{number % 4}" / f"copy-{number:02d}.jpg"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original, copy)
    settings = write_settings(tmp_path, f'[[watch]]\npath = "{photos}"\n')
    verbs = [("index", "--dir", str(photos)), ("scan",)]
    verbs += [("decide", "keep", str(photos / f"p{seed}" / "original.jpg")) for seed in range(3)]
    for verb in verbs:
        result = call_main(*verb, config=settings)
        assert result.returncode == 0, result.stderr
    return tmp_path, photos, settings


def apply_killed_after(settings: Path, move_to: Path, journal_lines: int) -> Path:
    """Run the real ``apply`` and SIGKILL it (and anything it started) as soon as its journal
    has ``journal_lines`` lines; the journal."""
    folder = settings.parent / "state" / "journal"
    command = [sys.executable, "-m", "dupe_scanner", "apply", "--move-to", str(move_to), "--config", str(settings)]
    process = subprocess.Popen(command, cwd=settings.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            journals = list(folder.glob("apply-*.jsonl")) if folder.is_dir() else []
            if journals and journals[0].read_bytes().count(b"\n") >= journal_lines:
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.stderr is not None  # a pipe
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    (journal_file,) = folder.glob("apply-*.jsonl")
    return journal_file


@pytest.mark.parametrize("journal_lines", [2, 41, 120])  # even: just after an intent; odd: after a done
def test_apply_killed_mid_way_leaves_each_file_where_it_was_or_where_the_journal_says_and_undo_restores_all(big_library, journal_lines):
    root, photos, settings = big_library
    aside = root / "aside"
    before = snapshot(photos)
    journal_file = apply_killed_after(settings, aside, journal_lines)

    events = [json.loads(line) for line in journal_file.read_text().splitlines() if line.endswith("}")]
    assert not any(event["event"] == "finished" for event in events)  # killed mid-way, not after
    intended = {Path(e["source"]): Path(e["destination"]) for e in events if e["event"] == "intent"}
    assert intended and len(intended) < 120
    for name, data in before.items():
        source = photos / name
        places = [path for path in (source, intended.get(source)) if path is not None and path.exists()]
        assert places, f"{name} is lost"
        assert all(place.read_bytes() == data for place in places), name
        if len(places) == 2:  # killed between the link and the unlink: one file, two names
            assert os.path.samefile(*places), name
    assert {aside / name for name in snapshot(aside)} <= set(intended.values())  # nothing else, no partial copy

    undone = call_main("undo", config=settings)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert snapshot(photos) == before
    assert snapshot(aside) == {}
    assert all(os.stat(photos / name).st_nlink == 1 for name in before)
    again = call_main("apply", "--move-to", str(aside), config=settings)  # the state still knows every file
    assert again.returncode == 0 and "moved 120 files, refused 0" in again.stdout, again.stdout + again.stderr


def test_undo_killed_mid_way_can_be_run_again_and_restores_every_byte(big_library):
    root, photos, settings = big_library
    aside = root / "aside"
    before = snapshot(photos)
    applied = call_main("apply", "--move-to", str(aside), config=settings)
    assert "moved 120 files, refused 0" in applied.stdout, applied.stdout + applied.stderr
    command = [sys.executable, "-m", "dupe_scanner", "undo", "--config", str(settings)]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while process.poll() is None and sum(path.is_file() for path in aside.rglob("*")) > 60:
        time.sleep(0.001)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert 0 < len(snapshot(aside)) < 120
    assert all((photos / name).exists() or (aside / name).exists() for name in before)

    undone = call_main("undo", config=settings)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert snapshot(photos) == before and snapshot(aside) == {}
