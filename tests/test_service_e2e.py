"""The real service (``python -m dupe_scanner run``) as a subprocess on real folders.

A short stability delay and debounce keep these quick; the sd_notify messages are read
from a real NOTIFY_SOCKET datagram socket. The first test takes one running service
through a day in its life, step after step (starting one costs a second or two); each
step starts from where the one before it left the folders, so the test runs them in the
order of ``A_DAY``, whatever order the tests run in.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.photos import make_photo
from tests.service_helpers import (
    REPO,
    ServiceProcess,
    query,
    read_groups,
    save_image,
    settings_text,
    smooth_image,
    wait_for,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the service targets Linux")


def photo(seed: int):
    """A small photo-like picture, distinct from every other seed's."""
    return make_photo(seed, (160, 120))


def groups_containing(reports: Path, *paths: Path) -> list[str] | None:
    wanted = {str(p) for p in paths}
    for group in read_groups(reports):
        if wanted <= set(group):
            return group
    return None


def wait_group(reports: Path, *paths: Path, timeout: float = 30) -> list[str]:
    return wait_for(lambda: groups_containing(reports, *paths), timeout, what=f"a group with {[p.name for p in paths]}")


def wait_not_reported(reports: Path, path: Path, timeout: float = 30) -> None:
    wait_for(lambda: all(str(path) not in group for group in read_groups(reports)), timeout, what=f"{path.name} to leave")


def row_of(state: Path, path: Path) -> tuple | None:
    rows = query(state, "select id, state, content_hash, error, attempts from files where path = ?", str(path))
    return rows[0] if rows else None


def state_of(state: Path, path: Path) -> tuple:
    """``row_of`` for a file the state has."""
    row = row_of(state, path)
    assert row is not None, f"{path} is not in the state"
    return row


# One service through a day in its life ---------------------------------------------------------


@pytest.fixture
def life(tmp_path):
    root = tmp_path
    for name in ("one", "two", "three"):
        (root / name).mkdir()
    config = root / "settings.toml"
    config.write_text(settings_text(["one", "two"]))
    service = ServiceProcess(root, config, watchdog_usec=2_000_000)
    yield service
    service.close()


def step_ready_status_and_watchdog(life):
    started = time.monotonic()
    life.start()
    ready = life.notify.wait_for("READY", "1")
    assert "2 folders watched" in ready.get("STATUS", "")
    assert time.monotonic() - started < 30
    life.notify.wait_for("WATCHDOG", "1", count=2, timeout=10)  # WATCHDOG_USEC=2s: a ping at least every 1s
    life.notify.wait_for("STATUS", timeout=10)


def step_add(life):
    original = save_image(photo(1), life.folder / "one" / "a.png")
    copy = save_image(photo(1).resize((240, 180)), life.folder / "two" / "a-bigger.jpg", atomic=True, quality=85)
    wait_group(life.reports, original, copy)
    assert state_of(life.state, original)[1] == "indexed"


def step_rename_keeps_the_analysis(life):
    old = life.folder / "one" / "a.png"
    before = state_of(life.state, old)
    contents = query(life.state, "select count(*) from contents")[0][0]
    new = life.folder / "one" / "renamed.png"
    old.rename(new)
    wait_group(life.reports, new, life.folder / "two" / "a-bigger.jpg")
    after = state_of(life.state, new)
    assert after[0] == before[0] and after[2] == before[2] and after[1] == "indexed"  # same row, same content
    assert row_of(life.state, old) is None
    assert query(life.state, "select count(*) from contents")[0][0] == contents


def step_move_between_watched_folders(life):
    source = life.folder / "two" / "a-bigger.jpg"
    content = state_of(life.state, source)[2]
    destination = life.folder / "one" / "sub" / "moved.jpg"
    destination.parent.mkdir()
    source.rename(destination)
    group = wait_group(life.reports, life.folder / "one" / "renamed.png", destination)
    assert str(source) not in group
    wait_for(lambda: state_of(life.state, destination)[1] == "indexed", what="the moved file indexed")
    assert state_of(life.state, destination)[2] == content


def step_modify(life):
    renamed = life.folder / "one" / "renamed.png"
    save_image(photo(99), renamed)  # now another picture: no longer a duplicate
    wait_not_reported(life.reports, renamed)
    wait_for(lambda: state_of(life.state, renamed)[1] == "indexed", what="the new content indexed")


def step_delete(life):
    first = save_image(photo(2), life.folder / "one" / "b.png")
    second = save_image(photo(2), life.folder / "two" / "b.jpg", quality=90)
    wait_group(life.reports, first, second)
    second.unlink()
    wait_not_reported(life.reports, first)
    wait_for(lambda: state_of(life.state, second)[1] == "gone", what="the row gone")


def step_folder_deleted_inside_a_watched_folder(life):
    folder = life.folder / "one" / "album"
    first = save_image(photo(3), folder / "c.png")
    second = save_image(photo(3), life.folder / "two" / "c.png")
    wait_group(life.reports, first, second)
    shutil.rmtree(folder)
    wait_not_reported(life.reports, second)


def step_a_file_written_slowly_in_chunks(life):
    """Written over ~1.5 s in small chunks with pauses shorter than the stability delay:
    it is analysed once, whole, and never recorded as a broken image."""
    model = save_image(photo(4).resize((400, 300)), life.folder / "model.jpg", quality=90)
    data = model.read_bytes()
    twin = life.folder / "two" / "d-twin.jpg"
    slow = life.folder / "one" / "d-slow.jpg"
    with open(slow, "wb") as handle:
        for start in range(0, len(data), max(1, len(data) // 8)):
            handle.write(data[start : start + max(1, len(data) // 8)])
            handle.flush()
            time.sleep(0.15)
    shutil.copyfile(model, twin)
    group = wait_group(life.reports, slow, twin)
    assert len(group) == 2
    row = state_of(life.state, slow)
    assert row[1] == "indexed" and row[3] is None and row[4] == 0, row
    assert f"cannot index {slow}" not in life.log()


def step_sighup_reloads(life):
    reloads = len(life.notify.with_key("RELOADING", "1"))
    life.signal(signal.SIGHUP)
    life.notify.wait_for("RELOADING", "1", count=reloads + 1, timeout=15)
    life.wait_ready(15)  # READY=1 follows the reload
    wait_for(lambda: "settings reloaded (SIGHUP)" in life.log(), what="the reload line")


def step_an_invalid_edit_is_reported_and_ignored(life):
    good = life.config.read_text()
    life.config.write_text(good.replace("debounce_seconds = 0.5", "debounce_seconds = -1\nspeed = 11"))
    wait_for(lambda: "still running on the last good settings" in life.log(), what="the complaint")
    log = life.log()
    assert f"{life.config}: scan.debounce_seconds: must be at least 0" in log
    assert f"{life.config}: scan.speed: unknown key" in log
    assert life.alive()
    # Still working on the last good settings.
    first = save_image(photo(5), life.folder / "one" / "e.png")
    second = save_image(photo(5), life.folder / "two" / "e.png")
    wait_group(life.reports, first, second)
    life.config.write_text(good)


def step_an_edit_adding_and_removing_folders(life):
    three = life.folder / "three"
    first = save_image(photo(6), three / "f.png")
    second = save_image(photo(6).resize((120, 90)), three / "deeper" / "f.jpg", quality=90)
    still = life.folder / "one" / "d-slow.jpg"
    assert groups_containing(life.reports, still)
    life.config.write_text(settings_text(["one", "three"]))
    wait_group(life.reports, first, second)  # walked when added
    wait_not_reported(life.reports, life.folder / "two" / "d-twin.jpg")  # two is no longer watched
    wait_for(lambda: "three" in " ".join(f["path"] for f in _folders(life)), what="the status file to list three")
    # And the new folder is watched, not just walked.
    third = save_image(photo(6), three / "f-again.png", atomic=True)
    wait_group(life.reports, first, second, third)


def step_status_command_talks_about_the_service(life):
    result = subprocess.run(
        [sys.executable, "-m", "dupe_scanner", "status", "--config", str(life.config)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert "service: running" in result.stdout, result.stdout + result.stderr
    assert "watching" in result.stdout and "inotify" in result.stdout


def step_sigterm_stops_cleanly_and_quickly(life):
    code, seconds = life.terminate()
    assert code == 0, life.log()
    assert seconds < 10
    life.notify.wait_for("STOPPING", "1", timeout=5)
    assert "Traceback" not in life.log()


A_DAY = [
    step_ready_status_and_watchdog,
    step_add,
    step_rename_keeps_the_analysis,
    step_move_between_watched_folders,
    step_modify,
    step_delete,
    step_folder_deleted_inside_a_watched_folder,
    step_a_file_written_slowly_in_chunks,
    step_sighup_reloads,
    step_an_invalid_edit_is_reported_and_ignored,
    step_an_edit_adding_and_removing_folders,
    step_status_command_talks_about_the_service,
    step_sigterm_stops_cleanly_and_quickly,
]


@pytest.mark.timeout(600)
def test_a_day_in_the_life_of_the_service(life):
    """Start, add, rename, move, modify, delete, write slowly, reload, edit the settings,
    ask for the status, stop: one service, each step after the one before it."""
    for step in A_DAY:
        step(life)


def _folders(life) -> list[dict]:
    import json

    try:
        return json.loads((life.folder / "state" / "service-status.json").read_text())["folders"]
    except (OSError, ValueError, KeyError):
        return []


# A burst ------------------------------------------------------------------------------------------


PICTURES = 20


@pytest.mark.timeout(240)
def test_a_burst_of_1000_files(tmp_path):
    """1000 files arriving at once: 20 pictures, each as 25 byte-identical PNGs and 25
    byte-identical JPEGs spread over folders. Every file ends indexed, each distinct
    content is analysed once, and every picture's 50 files are grouped together."""
    photos = tmp_path / "photos"
    photos.mkdir()
    config = tmp_path / "settings.toml"
    config.write_text(settings_text(["photos"]))
    service = ServiceProcess(tmp_path, config)
    try:
        service.start()
        masters = tmp_path / "masters"
        for seed in range(PICTURES):
            picture = make_photo(1000 + seed, (128, 96))
            save_image(picture, masters / f"{seed}.png")
            save_image(picture, masters / f"{seed}.jpg", quality=88)
        started = time.monotonic()
        for index in range(1000):
            seed, copy = index % PICTURES, index // PICTURES
            source = masters / (f"{seed}.png" if copy % 2 == 0 else f"{seed}.jpg")
            folder = photos / f"folder{copy % 10}"
            folder.mkdir(exist_ok=True)
            shutil.copyfile(source, folder / f"p{seed}-{copy}{source.suffix}")
        written = time.monotonic() - started
        state = tmp_path / "state" / "state.db"
        wait_for(
            lambda: query(state, "select count(*) from files where state = 'indexed'")[0][0] == 1000,
            timeout=180, interval=0.5, what="1000 files indexed",
        )
        expected = [{str(p) for p in photos.glob(f"folder*/p{seed}-*")} for seed in range(PICTURES)]
        assert all(len(group) == 1000 // PICTURES for group in expected)

        def reported() -> bool:
            groups = [set(group) for group in read_groups(tmp_path / "reports")]
            # Every picture's files in one group (were the backend to judge two of the
            # pictures alike, their groups would merge: that is its business, not ours).
            return sum(map(len, groups)) == 1000 and all(any(e <= g for g in groups) for e in expected)

        wait_for(reported, timeout=120, interval=0.5, what="every picture's files grouped")
        assert query(state, "select count(*) from files where state != 'indexed'")[0][0] == 0
        assert query(state, "select count(*) from contents")[0][0] == 2 * PICTURES
        settled = time.monotonic() - started
        code, _ = service.terminate()
        assert code == 0
        log = service.log()
        # Progress summaries, not a line per file.
        assert log.count("\n") < 200, log[-3000:]
        print(f"burst: 1000 files written in {written:.1f}s, all indexed and reported after {settled:.1f}s")
    finally:
        service.close()


# SIGKILL at any instant -----------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_sigkill_during_indexing_then_restart(tmp_path):
    """Killed while indexing: after a restart every image ends indexed (or failed, with a
    reason), each exactly once; a SIGTERM during the second run leaves the rest pending."""
    photos = tmp_path / "photos"
    config = tmp_path / "settings.toml"
    config.write_text(
        settings_text(
            ["photos"],
            extra='[index]\nstable_seconds = 0.3\nworkers = 2\n[scan]\ndebounce_seconds = 600\nschedule = "interval:1h"\n',
        )
    )
    images = []
    for seed in range(60):
        images.append(save_image(smooth_image(2000 + seed, (1600, 1200)), photos / f"big-{seed}.jpg", quality=90))
    for seed in range(0, 60, 10):  # a few byte-identical copies: their content must be analysed once
        images.append(Path(shutil.copyfile(images[seed], photos / f"copy-of-{seed}.jpg")))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    state = tmp_path / "state" / "state.db"
    service = ServiceProcess(tmp_path, config)
    try:
        service.start()
        indexed = lambda: query(state, "select count(*) from files where state = 'indexed'")[0][0]  # noqa: E731
        wait_for(lambda: indexed() >= 5, timeout=120, interval=0.05, what="indexing to start")
        service.kill()
        assert indexed() < len(images), "indexing finished before the kill: make the images bigger"

        service.start()
        wait_for(lambda: indexed() >= 20, timeout=120, interval=0.05, what="indexing to resume")
        code, seconds = service.terminate()
        assert code == 0 and seconds < 10, (code, seconds)
        pending = query(state, "select count(*) from files where state = 'pending'")[0][0]
        assert pending >= 0

        service.start()
        wait_for(
            lambda: query(state, "select count(*) from files where state = 'pending'")[0][0] == 0,
            timeout=180, interval=0.2, what="the queue to drain",
        )
        rows = query(state, "select path, state, error from files")
        paths = [row[0] for row in rows]
        assert len(paths) == len(set(paths)) == len(images) + 1
        by_path = {row[0]: row for row in rows}
        assert all(by_path[str(image)][1] == "indexed" for image in images)
        broken = by_path[str(photos / "broken.jpg")]
        assert broken[1] == "failed" and broken[2]
        # Each content analysed once: one contents row and one features row per distinct picture.
        assert query(state, "select count(*) from contents")[0][0] == 60
        assert query(state, "select count(*) from features")[0][0] == 60
        code, _ = service.terminate()
        assert code == 0
    finally:
        service.close()
