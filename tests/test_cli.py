"""The one-shot command line end to end: index a folder, scan it, read the reports.

The library's first index and scan, ``--help`` and the progress bars on a terminal run
``python -m dupe_scanner`` as a process; the other commands call ``cli.main`` here."""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dupe_scanner import scanning
from tests.cli import call_main, run_cli, write_settings
from tests.photos import copies_of, make_photo, save


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Three photographs with their copies, two unrelated photographs, and a broken file."""
    root = tmp_path_factory.mktemp("library")
    photos = root / "photos"
    expected = []
    for seed in (1, 2, 3):
        original = save(make_photo(seed, (800, 600)), photos / f"original-{seed}.jpg", quality=92)
        copies = copies_of(original, photos / "copies", f"photo-{seed}")
        expected.append(sorted(str(p) for p in [original, *copies]))
    save(make_photo(10, (800, 600)), photos / "unrelated-10.jpg", quality=92)
    save(make_photo(11, (600, 800)), photos / "unrelated-11.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (photos / "truncated.jpg").write_bytes((photos / "original-1.jpg").read_bytes()[:2000])
    settings = write_settings(root)
    return root, photos, settings, sorted(expected)


@pytest.fixture(scope="module")
def indexed(library):
    _root, photos, settings, _expected = library
    first = run_cli("index", "--dir", str(photos), config=settings)
    scanned = run_cli("scan", config=settings)
    return library, first, scanned


def test_index_then_scan_groups_every_original_with_exactly_its_copies(indexed):
    (root, _photos, _settings, expected), first, scanned = indexed
    assert first.returncode == 0, first.stderr
    assert scanned.returncode == 0, scanned.stderr
    report = json.loads((root / "reports" / "duplicates.json").read_text())
    assert sorted(sorted(paths) for paths in report.values()) == expected
    assert list(report) == [f"group-{n}" for n in range(1, len(report) + 1)]


def test_duplicates_json_is_biggest_group_first_with_sorted_paths(indexed):
    (root, *_), _, _ = indexed
    report = json.loads((root / "reports" / "duplicates.json").read_text())
    sizes = [len(paths) for paths in report.values()]
    assert sizes == sorted(sizes, reverse=True)
    assert all(paths == sorted(paths) for paths in report.values())


def test_unreadable_images_fail_with_a_reason_and_the_run_goes_on(indexed):
    (_root, photos, settings, _), first, _ = indexed
    assert "2 failed" in first.stdout
    status = call_main("status", config=settings)
    assert status.returncode == 0, status.stderr
    assert f"{photos / 'broken.jpg'}: " in status.stdout
    assert f"{photos / 'truncated.jpg'}: " in status.stdout
    assert "indexed" in status.stdout and "last scan" in status.stdout


def test_indexing_an_unchanged_folder_again_decodes_nothing(indexed):
    (_root, photos, settings, _), _, _ = indexed
    again = call_main("index", "--dir", str(photos), config=settings)
    assert again.returncode == 0, again.stderr
    assert "0 new, 0 changed, 0 gone; 0 to index" in again.stdout


def test_a_second_scan_writes_the_same_reports(indexed):
    (root, _photos, settings, _), _, _ = indexed
    before = (root / "reports" / "duplicates.json").read_bytes()
    assert call_main("scan", config=settings).returncode == 0
    assert (root / "reports" / "duplicates.json").read_bytes() == before


def test_details_name_a_file_to_keep_and_score_each_pair(indexed):
    (root, *_), _, _ = indexed
    details = json.loads((root / "reports" / "duplicates.details.json").read_text())
    text = json.dumps(details)
    assert "original-1.jpg" in text and "exact" in text and "near" in text


def test_the_state_is_a_real_sqlite_file_in_wal_mode(indexed):
    (root, *_), _, _ = indexed
    with sqlite3.connect(root / "state" / "state.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        states = dict(connection.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall())
    assert states["failed"] == 2


def test_a_scan_at_a_stricter_threshold_leaves_out_near_duplicates(indexed, tmp_path):
    (root, photos, _, _), _, _ = indexed  # the reports of the usual threshold, to compare with
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    assert call_main("scan", "--threshold", "0.99", config=settings).returncode == 0
    strict = json.loads((tmp_path / "reports" / "duplicates.json").read_text())
    assert strict, "identical copies score 1.0 and stay grouped at any threshold"
    for paths in strict.values():
        assert all("bright" not in path for path in paths)
    normal = json.loads((root / "reports" / "duplicates.json").read_text())
    assert any("bright" in path for paths in normal.values() for path in paths)


def test_moved_and_byte_identical_files_are_not_analysed_again(tmp_path):
    photos = tmp_path / "photos"
    original = save(make_photo(5), photos / "a.jpg", quality=90)
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    shutil.copyfile(original, photos / "b.jpg")
    (photos / "sub").mkdir()
    original.rename(photos / "sub" / "moved.jpg")
    again = call_main("index", "--dir", str(photos), config=settings)
    assert again.returncode == 0, again.stderr
    assert "2 reused" in again.stdout and "analysed" not in again.stdout


def test_a_later_scan_compares_only_new_images_and_still_finds_their_duplicates(tmp_path):
    photos = tmp_path / "photos"
    original = save(make_photo(7), photos / "a.jpg", quality=90)
    save(make_photo(8), photos / "b.jpg", quality=90)
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    first = call_main("scan", config=settings)
    assert "Found 0 duplicate groups" in first.stdout
    from PIL import Image

    save(Image.open(original).resize((320, 240)), photos / "later" / "a-small.png")
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    second = call_main("scan", config=settings)
    assert second.returncode == 0, second.stderr
    report = json.loads((tmp_path / "reports" / "duplicates.json").read_text())
    assert report == {"group-1": [str(photos / "a.jpg"), str(photos / "later" / "a-small.png")]}
    (photos / "later" / "a-small.png").unlink()
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    assert call_main("scan", config=settings).returncode == 0
    assert json.loads((tmp_path / "reports" / "duplicates.json").read_text()) == {}


def test_a_scan_after_the_scoring_changed_compares_everything_again(tmp_path):
    photos = tmp_path / "photos"
    save(make_photo(7), photos / "a.jpg", quality=90)
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    assert "compared all" in call_main("--log-level", "info", "scan", config=settings).stderr
    assert "Nothing changed since the scan of" in call_main("--log-level", "info", "scan", config=settings).stdout
    with sqlite3.connect(tmp_path / "state" / "state.db") as connection:  # as left by an older release
        connection.execute("UPDATE meta SET value = 'embedded-older' WHERE key = 'pairs_comparison'")
    assert "compared all" in call_main("--log-level", "info", "scan", config=settings).stderr


def indexed_photo_and_copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A folder of a photograph and a byte-identical copy, indexed: (photos, the original, settings)."""
    photos = tmp_path / "photos"
    original = save(make_photo(7), photos / "a.jpg", quality=90)
    shutil.copyfile(original, photos / "a-copy.jpg")
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    return photos, original, settings


def test_a_scan_with_nothing_new_says_the_reports_are_current_and_leaves_them(tmp_path):
    _photos, _original, settings = indexed_photo_and_copy(tmp_path)
    assert "Found 1 duplicate groups" in call_main("scan", config=settings).stdout
    reports = tmp_path / "reports"
    written = {path: path.stat().st_mtime_ns for path in reports.iterdir() if path.is_file()}

    again = call_main("scan", config=settings)
    assert again.returncode == 0, again.stderr
    [line] = again.stdout.splitlines()
    assert line.startswith("Nothing changed since the scan of ") and f"the reports in {reports} are current" in line
    assert "'scan --full' compares every image again" in line
    assert {path: path.stat().st_mtime_ns for path in reports.iterdir() if path.is_file()} == written
    with sqlite3.connect(tmp_path / "state" / "state.db") as connection:
        assert connection.execute("SELECT count(*) FROM scans").fetchone() == (1,)  # not run at all

    full = call_main("scan", "--full", config=settings)
    assert "Found 1 duplicate groups" in full.stdout  # --full always runs
    with sqlite3.connect(tmp_path / "state" / "state.db") as connection:
        assert connection.execute("SELECT count(*) FROM scans").fetchone() == (2,)


@pytest.mark.parametrize("change", ["threshold", "new file", "reports deleted", "keep setting", "decision", "new version"])
def test_a_scan_runs_again_after_anything_that_shapes_the_reports_changed(tmp_path, change, monkeypatch):
    photos, original, settings = indexed_photo_and_copy(tmp_path)
    assert call_main("scan", config=settings).returncode == 0
    assert "Nothing changed" in call_main("scan", config=settings).stdout
    options: tuple[str, ...] = ()
    if change == "threshold":
        options = ("--threshold", "0.95")
    elif change == "new file":
        shutil.copyfile(original, photos / "a-third.jpg")
        assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    elif change == "reports deleted":
        (tmp_path / "reports" / "review.html").unlink()
    elif change == "keep setting":
        write_settings(tmp_path, '[keep]\npreferred_formats = ["PNG", "JPEG"]\n')
    elif change == "new version":  # an upgrade that groups otherwise, with no file changed
        monkeypatch.setattr(scanning, "code_digest", lambda: "the next release")
    else:
        assert call_main("decide", "keep", str(photos / "a-copy.jpg"), config=settings).returncode == 0

    rescanned = call_main("scan", *options, config=settings)
    assert rescanned.returncode == 0, rescanned.stderr
    assert "Nothing changed" not in rescanned.stdout and "Found 1 duplicate groups" in rescanned.stdout
    assert (tmp_path / "reports" / "review.html").is_file()
    assert "Nothing changed" in call_main("scan", *options, config=settings).stdout


def test_a_scan_of_new_pictures_that_match_nothing_leaves_the_reports_as_they_were(tmp_path):
    photos, _original, settings = indexed_photo_and_copy(tmp_path)
    assert call_main("scan", config=settings).returncode == 0
    reports = tmp_path / "reports"
    written = {path: (path.stat().st_mtime_ns, path.stat().st_ino) for path in reports.iterdir() if path.is_file()}

    save(make_photo(8), photos / "b.jpg", quality=90)  # like nothing in the library
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    rescanned = call_main("--log-level", "info", "scan", config=settings)
    assert rescanned.returncode == 0, rescanned.stderr
    assert "compared 1 new" in rescanned.stderr and "the reports were left as they are" in rescanned.stderr
    assert "Found 1 duplicate groups with 2 images." in rescanned.stdout
    assert sorted(line for line in rescanned.stdout.splitlines() if line.startswith("Report: ")) == sorted(
        f"Report: {path}" for path in written
    )
    assert {path: (path.stat().st_mtime_ns, path.stat().st_ino) for path in reports.iterdir() if path.is_file()} == written

    (reports / "duplicates.details.json").unlink()  # a report gone is written again, though nothing else changed
    save(make_photo(9), photos / "c.jpg", quality=90)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    again = call_main("--log-level", "info", "scan", config=settings)
    assert "the reports were left as they are" not in again.stderr and "Found 1 duplicate groups" in again.stdout
    assert json.loads((reports / "duplicates.details.json").read_text())["groups"]

    (reports / "duplicates.json").write_text("{}\n")  # as another program (or an older version) left it
    save(make_photo(10), photos / "d.jpg", quality=90)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    assert "the reports were left as they are" not in call_main("--log-level", "info", "scan", config=settings).stderr
    assert json.loads((reports / "duplicates.json").read_text()) == {"group-1": [str(photos / "a-copy.jpg"), str(photos / "a.jpg")]}


def test_clear_needs_confirmation_and_then_empties_the_state(tmp_path):
    photos = tmp_path / "photos"
    save(make_photo(6), photos / "a.jpg")
    settings = write_settings(tmp_path)
    assert call_main("index", "--dir", str(photos), config=settings).returncode == 0
    refused = call_main("clear", config=settings)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert call_main("clear", "--yes", config=settings).returncode == 0
    again = call_main("index", "--dir", str(photos), config=settings)
    assert "1 new" in again.stdout


def test_an_invalid_settings_file_lists_every_problem_and_exits_2(tmp_path):
    settings = write_settings(tmp_path, '[scan]\nthreshold = 7\n[backend]\nkind = "other"\n')
    result = call_main("check-config", config=settings)
    assert result.returncode == 2
    assert "scan.threshold" in result.stderr and "backend.kind" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_folder_is_a_usage_error(tmp_path):
    result = call_main("index", "--dir", str(tmp_path / "nowhere"), config=write_settings(tmp_path))
    assert result.returncode == 2
    assert "not a folder" in result.stderr and "Traceback" not in result.stderr


def test_an_unwritable_state_is_one_clear_line(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    settings = tmp_path / "settings.toml"
    settings.write_text('[paths]\nstate = "blocker/state.db"\n')
    result = call_main("status", config=settings)
    assert result.returncode == 1
    assert "cannot create the state folder" in result.stderr and "Traceback" not in result.stderr


def test_every_command_and_option_has_help_text():
    from dupe_scanner.cli import build_parser

    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb")
    assert verbs.choices is not None
    assert set(verbs.choices) == {"status", "index", "scan", "clear", "check-config", "decide", "apply", "undo", "run", "sample"}
    _assert_helped(verbs, "dupe-scanner")


def _assert_helped(verbs, prefix: str) -> None:
    """Every command of ``verbs``, every option and every nested command has help text."""
    for choice in verbs._choices_actions:
        assert choice.help, f"{prefix} {choice.dest}"
    for name, sub in verbs.choices.items():
        for action in sub._actions:
            assert action.help, f"{prefix} {name} {action.option_strings}"
            if action.choices and hasattr(action, "_choices_actions"):
                _assert_helped(action, f"{prefix} {name}")


def test_python_dash_m_and_the_console_script_are_the_same_program():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "dupe-scanner" in result.stdout
    console = Path(sys.executable).parent / "dupe-scanner"
    installed = subprocess.run([str(console), "--help"], capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0
    assert installed.stdout == result.stdout.replace("__main__.py", "dupe-scanner")


def on_a_terminal(*arguments: str, config: Path) -> tuple[int, str]:
    """Run the command with stderr on a pseudo-terminal 100 columns wide; its exit code and what the terminal showed."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    from tests.cli import REPO

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "dupe_scanner", *arguments, "--config", str(config)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the command ended: the terminal has no writer left
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(60), shown.decode(errors="replace")


def test_scan_shows_each_stage_with_a_bar_on_a_terminal_and_nothing_in_a_pipe(indexed):
    (_root, _photos, settings, _expected), _first, scanned = indexed
    code, shown = on_a_terminal("scan", "--full", config=settings)  # --full: the library is scanned already
    assert code == 0
    for stage in ("forgetting deleted images", "comparing images", "forming groups", "writing reports"):
        assert f"{stage}: 100%" in shown, shown
    assert scanned.stderr == ""  # scripts and logs get no bar
