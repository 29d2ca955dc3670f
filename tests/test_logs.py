"""Log lines: plain on a terminal or in a file, with sd-daemon(3) priority prefixes when
stderr is the journal (``JOURNAL_STREAM`` names stderr's device and inode)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dupe_scanner.logs import JournalFormatter, priority, stderr_is_journal
from tests.service_helpers import ServiceProcess

REPO = Path(__file__).resolve().parent.parent
PREFIX = re.compile(r"^<([0-7])>")


def stream_id(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_dev}:{stat.st_ino}"


@pytest.mark.parametrize(
    "level, expected",
    [(logging.CRITICAL, 3), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6), (logging.DEBUG, 7), (5, 7)],
)
def test_levels_map_to_syslog_priorities(level, expected):
    assert priority(level) == expected


def test_the_journal_is_recognised_by_stderr_device_and_inode(tmp_path):
    stream, other = tmp_path / "stream", tmp_path / "other"
    stream.touch()
    other.touch()
    with open(stream, "a") as handle:
        fd = handle.fileno()
        assert stderr_is_journal({"JOURNAL_STREAM": stream_id(stream)}, fd)
        # Inherited from a unit but redirected elsewhere (`2>file`): not the journal.
        assert not stderr_is_journal({"JOURNAL_STREAM": stream_id(other)}, fd)
        assert not stderr_is_journal({}, fd)
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, fd)
        assert not stderr_is_journal({"JOURNAL_STREAM": ""}, fd)


def test_every_line_of_a_record_carries_its_priority():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed\nsecond line", None, sys.exc_info())
    lines = JournalFormatter("%(levelname)s %(message)s").format(record).split("\n")
    assert lines[0] == "<3>ERROR failed"
    assert len(lines) > 3  # the message's second line and the traceback
    assert all(line.startswith("<3>") for line in lines)


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "plain"])
def test_the_service_log_under_systemd_and_elsewhere(tmp_path, monkeypatch, journal):
    (tmp_path / "pictures").mkdir()
    config = tmp_path / "settings.toml"
    config.write_text(
        '[paths]\nstate = "state/state.db"\nreports = "reports"\n'
        '[[watch]]\npath = "pictures"\n[[watch]]\npath = "missing"\n[log]\nlevel = "debug"\n',
        encoding="utf-8",
    )
    service = ServiceProcess(tmp_path, config)
    service.log_path.touch()  # the service's stderr: the same file, so the same inode
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", stream_id(service.log_path))
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    try:
        service.start()
        code, _ = service.terminate()
    finally:
        service.close()
    assert code == 0
    lines = [line for line in service.log().splitlines() if line and not line.startswith("----- start")]
    warning = next(line for line in lines if "missing: folder not found" in line)
    running = next(line for line in lines if "running: 2 folders watched" in line)
    if journal:
        unprefixed = [line for line in lines if not PREFIX.match(line)]
        assert not unprefixed, f"lines without a priority: {unprefixed!r}\n--- the whole log:\n{service.log()}"
        assert warning.startswith("<4>WARNING ")
        assert running.startswith("<6>INFO ")
        assert any(line.startswith("<7>DEBUG ") for line in lines)
    else:
        assert not any(PREFIX.match(line) for line in lines), lines
        assert warning.startswith("WARNING dupe_scanner.service.watching: ")
        assert running.startswith("INFO dupe_scanner.service: running")


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "plain"])
def test_a_one_shot_command_error_line(tmp_path, journal):
    config = tmp_path / "settings.toml"
    config.write_text('[paths]\nstate = "state/state.db"\nreports = "reports"\n', encoding="utf-8")
    stderr_path = tmp_path / "stderr"
    stderr_path.touch()
    env = {key: value for key, value in os.environ.items() if key != "JOURNAL_STREAM"}
    if journal:
        env["JOURNAL_STREAM"] = stream_id(stderr_path)
    with open(stderr_path, "a") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "dupe_scanner", "index", "--dir", str(tmp_path / "nowhere"), "--config", str(config)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120,
        )
    assert result.returncode == 2
    expected = f"dupe-scanner: error: --dir {tmp_path / 'nowhere'}: not a folder"
    assert stderr_path.read_text().splitlines() == [f"<3>{expected}" if journal else expected]


STRAYS = """
import os, multiprocessing, threading, warnings
from concurrent.futures import ProcessPoolExecutor
from dupe_scanner.logs import configure_logging, stderr_is_journal
from dupe_scanner.workers import start_worker

configure_logging("info", "run", stderr_is_journal(os.environ))
warnings.warn("odd in the main process")
thread = threading.Thread(target=lambda: 1 / 0, name="watcher")
thread.start()
thread.join()
context = multiprocessing.get_context("forkserver")
with ProcessPoolExecutor(1, mp_context=context, initializer=start_worker, initargs=(os.getpid(),)) as pool:
    pool.submit(warnings.warn, "odd in a worker").result()
"""


def test_warnings_and_a_failed_thread_reach_the_journal_with_their_priority(tmp_path):
    """Python prints these to stderr itself, where the journal would file them as notices."""
    log = tmp_path / "stderr"
    log.touch()
    environment = {**os.environ, "JOURNAL_STREAM": stream_id(log), "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(log, "a") as stderr:
        done = subprocess.run([sys.executable, "-c", STRAYS], stderr=stderr, env=environment, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert all(PREFIX.match(line) for line in lines), log.read_text()
    assert any(line.startswith("<4>WARNING py.warnings:") and "odd in the main process" in line for line in lines)
    assert any(line.startswith("<4>WARNING py.warnings:") and "odd in a worker" in line for line in lines)
    assert any(line.startswith("<3>ERROR dupe_scanner: watcher stopped on an unexpected error") for line in lines)
    assert any(line.startswith("<3>ZeroDivisionError") for line in lines)
