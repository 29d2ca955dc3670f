"""Settings are parsed once, every problem reported with its key path, paths made absolute."""

from pathlib import Path

import pytest

from dupe_scanner.errors import SettingsError
from dupe_scanner.settings import load_settings, parse_schedule

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_default_file_loads():
    settings = load_settings(REPO / "settings.toml")
    assert settings.backend.kind == "embedded"
    assert settings.scan.threshold == 0.6
    assert settings.scan.schedule.interval_seconds == 15 * 60
    assert settings.paths.state == REPO / "state" / "state.db"


def test_relative_paths_count_from_the_settings_folder(tmp_path):
    settings = load_settings(write(tmp_path, '[paths]\nstate = "s/state.db"\nreports = "out"\n[[watch]]\npath = "photos"\n'))
    assert settings.paths.state == tmp_path / "s" / "state.db"
    assert settings.paths.reports == tmp_path / "out"
    assert settings.watch[0].path == tmp_path / "photos"


def test_every_problem_is_listed_with_its_key_path(tmp_path):
    path = write(
        tmp_path,
        """
[backend]
kind = "solr"
[scan]
threshold = 1.5
schedule = "every now and then"
colour = "blue"
[[watch]]
recursive = "yes"
[[watch]]
path = "x"
polling = "sometimes"
""",
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    problems = "\n".join(caught.value.problems)
    assert "backend.kind: must be one of embedded, flow, not 'solr'" in problems
    assert "scan.threshold:" in problems
    assert "scan.schedule:" in problems
    assert "scan.colour: unknown key" in problems
    assert "watch[0].path: is required" in problems
    assert "watch[1].polling:" in problems
    assert caught.value.exit_code == 2
    assert str(path) in str(caught.value)


def test_broken_toml_names_the_file_and_line(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, "[scan\nthreshold = 0.6\n"))
    assert "not valid TOML" in str(caught.value)
    assert "line 1" in str(caught.value)


def test_a_missing_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "text, seconds, cron",
    [
        ("interval:90s", 90, None), ("interval:15m", 900, None), ("interval:2h", 7200, None),
        ("cron:0 3 * * *", None, "0 3 * * *"), ("*/5 * * * *", None, "*/5 * * * *"),
    ],
)
def test_schedules(text, seconds, cron):
    schedule = parse_schedule(text)
    assert schedule.interval_seconds == seconds
    assert schedule.cron == cron


@pytest.mark.parametrize("text", ["interval:0m", "interval:soon", "cron:61 * * * *", "0 3 * *"])
def test_bad_schedules_are_refused(text):
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_the_same_folder_twice_is_refused(tmp_path):
    (tmp_path / "p").mkdir()
    with pytest.raises(SettingsError, match=r"watch\[1\].path: same folder as watch\[0\].path"):
        load_settings(write(tmp_path, '[[watch]]\npath = "p"\n[[watch]]\npath = "p/"\n'))


def test_a_watch_inside_another_recursive_watch_is_refused(tmp_path):
    (tmp_path / "p" / "raw").mkdir(parents=True)
    with pytest.raises(SettingsError, match=r"watch\[1\].path: inside watch\[0\].path"):
        load_settings(write(tmp_path, '[[watch]]\npath = "p"\n[[watch]]\npath = "p/raw"\n'))
    settings = load_settings(write(tmp_path, '[[watch]]\npath = "p"\nrecursive = false\n[[watch]]\npath = "p/raw"\n'))
    assert len(settings.watch) == 2


def test_watch_paths_are_resolved_through_symlinks(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    settings = load_settings(write(tmp_path, '[[watch]]\npath = "link"\n'))
    assert settings.watch[0].path == (tmp_path / "real").resolve()


def test_keep_rules_are_read_with_folders_resolved_and_formats_upper_case(tmp_path):
    settings = load_settings(write(tmp_path, '[keep]\npreferred_folders = ["originals"]\npreferred_formats = ["dng", "PNG"]\n'))
    assert settings.keep.preferred_folders == (tmp_path.resolve() / "originals",)
    assert settings.keep.preferred_formats == ("DNG", "PNG")


def test_bad_keep_rules_are_listed_with_their_keys(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, '[keep]\npreferred_folders = "originals"\npreferred_formats = [1]\nkeep_all = true\n'))
    problems = "\n".join(caught.value.problems)
    assert "keep.preferred_folders: must be list" in problems
    assert "keep.preferred_formats: must be a list of format names" in problems
    assert "keep.keep_all: unknown key" in problems
