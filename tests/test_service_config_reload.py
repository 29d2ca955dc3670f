"""Live settings: edits are picked up, invalid ones are reported and the last good kept."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from dupe_scanner.service import config_reload
from dupe_scanner.service.config_reload import CHANGED, INVALID, UNCHANGED, ConfigReloader
from dupe_scanner.settings import load_settings
from tests.service_helpers import wait_for

GOOD = '[paths]\nstate = "state/state.db"\nreports = "reports"\n[scan]\nthreshold = {threshold}\n'


class Recorder:
    def __init__(self):
        self.changes = []
        self.lock = threading.Lock()

    def __call__(self, old, new):
        with self.lock:
            self.changes.append((old, new))

    def count(self):
        with self.lock:
            return len(self.changes)


class FakeNotifier:
    def __init__(self):
        self.sent = []

    def reloading(self, status=None):
        self.sent.append("RELOADING")
        return True

    def ready(self, status=None):
        self.sent.append("READY")
        return True


@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(GOOD.format(threshold=0.6))
    return path


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def notifier():
    return FakeNotifier()


@pytest.fixture
def reloader(settings_file, recorder, notifier):
    created = ConfigReloader(
        settings_file, load_settings(settings_file), recorder, notifier=notifier, debounce=0.2, poll_seconds=0.5
    )
    created.start()
    yield created
    created.stop()


def test_an_edit_is_applied(reloader, settings_file, recorder, notifier):
    settings_file.write_text(GOOD.format(threshold=0.8))
    wait_for(lambda: recorder.count() == 1, what="the change")
    old, new = recorder.changes[0]
    assert old.scan.threshold == 0.6 and new.scan.threshold == 0.8
    assert reloader.settings.scan.threshold == 0.8
    assert notifier.sent[-2:] == ["RELOADING", "READY"]


def test_an_editor_that_replaces_the_file(reloader, settings_file, recorder, tmp_path):
    temporary = tmp_path / ".settings.toml.swp"
    temporary.write_text(GOOD.format(threshold=0.7))
    os.replace(temporary, settings_file)
    wait_for(lambda: recorder.count() == 1, what="the change")
    assert reloader.settings.scan.threshold == 0.7


def test_a_burst_of_writes_is_read_once(reloader, settings_file, recorder):
    for threshold in (0.61, 0.62, 0.63, 0.64, 0.65):
        settings_file.write_text(GOOD.format(threshold=threshold))
    wait_for(lambda: recorder.count() >= 1, what="the change")
    wait_for(lambda: not reloader._requested.is_set(), what="quiet")
    assert recorder.count() == 1
    assert reloader.settings.scan.threshold == 0.65


def test_an_invalid_edit_is_reported_and_the_last_good_kept(reloader, settings_file, recorder, caplog):
    with caplog.at_level(logging.ERROR, logger="dupe_scanner.service.config_reload"):
        settings_file.write_text(GOOD.format(threshold=7) + '[[watch]]\nrecursive = "yes"\n')
        wait_for(lambda: "still running on the last good settings" in caplog.text, what="the complaint")
    assert recorder.count() == 0
    assert reloader.settings.scan.threshold == 0.6
    assert f"{settings_file}: scan.threshold: must be a score" in caplog.text
    assert f"{settings_file}: watch[0].path: is required" in caplog.text
    assert "2 problems" in caplog.text
    # Fixing it applies the fix.
    settings_file.write_text(GOOD.format(threshold=0.9))
    wait_for(lambda: recorder.count() == 1, what="the fix")
    assert recorder.changes[0][0].scan.threshold == 0.6 and reloader.settings.scan.threshold == 0.9


def test_broken_toml_and_a_deleted_file_keep_the_settings(reloader, settings_file, recorder, caplog):
    with caplog.at_level(logging.ERROR, logger="dupe_scanner.service.config_reload"):
        settings_file.write_text("[paths\n")
        wait_for(lambda: "not valid TOML" in caplog.text, what="the TOML error")
        settings_file.unlink()
        wait_for(lambda: "file not found" in caplog.text, what="the missing file")
    assert recorder.count() == 0
    assert reloader.settings.scan.threshold == 0.6


def test_sighup_reloads_even_an_unchanged_file(reloader, recorder, notifier, caplog):
    with caplog.at_level(logging.INFO, logger="dupe_scanner.service.config_reload"):
        reloader.request("SIGHUP")
        wait_for(lambda: "settings reloaded (SIGHUP): nothing changed" in caplog.text, what="the reload")
    assert recorder.count() == 0
    assert notifier.sent == ["RELOADING", "READY"]


def test_rewriting_the_same_settings_changes_nothing(reloader, settings_file, recorder, caplog):
    with caplog.at_level(logging.INFO, logger="dupe_scanner.service.config_reload"):
        settings_file.write_text(GOOD.format(threshold=0.6) + "# a comment\n")
        wait_for(lambda: "nothing changed" in caplog.text, what="the reload")
    assert recorder.count() == 0


def test_reload_outcomes(settings_file, recorder):
    reloader = ConfigReloader(settings_file, load_settings(settings_file), recorder)
    assert reloader.reload("test").result == UNCHANGED
    settings_file.write_text(GOOD.format(threshold=0.75))
    outcome = reloader.reload("test")
    assert outcome.result == CHANGED and outcome.settings.scan.threshold == 0.75
    settings_file.write_text('[scan]\nthreshold = "high"\n')
    outcome = reloader.reload("test")
    assert outcome.result == INVALID and outcome.problems and outcome.settings.scan.threshold == 0.75


def test_a_failing_callback_does_not_stop_reloading(settings_file, caplog):
    calls = []

    def on_change(old, new):
        calls.append(new)
        raise RuntimeError("boom")

    reloader = ConfigReloader(settings_file, load_settings(settings_file), on_change, debounce=0.1, poll_seconds=0.3)
    reloader.start()
    try:
        with caplog.at_level(logging.ERROR):
            settings_file.write_text(GOOD.format(threshold=0.7))
            wait_for(lambda: len(calls) == 1, what="the first change")
        settings_file.write_text(GOOD.format(threshold=0.8))
        wait_for(lambda: len(calls) == 2, what="the second change")
        assert "applying the new settings failed" in caplog.text
        assert reloader.alive()
    finally:
        reloader.stop()


def test_without_a_folder_watch_the_stat_check_still_notices(settings_file, recorder, monkeypatch, caplog):
    class Broken:
        def schedule(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(config_reload, "Observer", Broken)
    reloader = ConfigReloader(settings_file, load_settings(settings_file), recorder, debounce=0.1, poll_seconds=0.2)
    with caplog.at_level(logging.WARNING):
        reloader.start()
    try:
        assert "checking it every 0.2s instead" in caplog.text
        settings_file.write_text(GOOD.format(threshold=0.85))
        wait_for(lambda: recorder.count() == 1, what="the change by stat")
    finally:
        reloader.stop()


def test_stop_ends_the_threads(settings_file, recorder):
    before = set(threading.enumerate())
    reloader = ConfigReloader(settings_file, load_settings(settings_file), recorder, poll_seconds=0.2)
    reloader.start()
    reloader.stop()
    wait_for(lambda: not (set(threading.enumerate()) - before), what="threads to end")


def test_a_restart_racing_the_stop_leaves_it_stopped(settings_file, recorder):
    """The heartbeat restarts a reloader whose thread it finds gone; during the service's stop
    that is every time, and a restart may come just as the stop joins the thread."""
    before = set(threading.enumerate())
    for _ in range(30):
        reloader = ConfigReloader(settings_file, load_settings(settings_file), recorder, poll_seconds=0.2)
        reloader.start()
        both = threading.Barrier(2)
        failures: list[Exception] = []

        def restart(reloader=reloader, both=both, failures=failures):
            both.wait()
            try:
                reloader.start()
            except Exception as error:
                failures.append(error)

        heartbeat = threading.Thread(target=restart)
        heartbeat.start()
        both.wait()
        reloader.stop()
        heartbeat.join()
        assert not failures
        reloader.start()  # after the stop: nothing starts
        assert not reloader.alive()
    wait_for(lambda: not (set(threading.enumerate()) - before), what="threads to end")
