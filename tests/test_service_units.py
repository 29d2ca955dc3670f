"""The systemd units: valid, hardened, and the sandbox does not break the program."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEM_UNIT = REPO / "systemd" / "dupe-scanner.service"
USER_UNIT = REPO / "systemd" / "dupe-scanner-user.service"
SYSUSERS = REPO / "systemd" / "dupe-scanner.sysusers"
ANALYZE = shutil.which("systemd-analyze") or ""  # "": not installed
needs_analyze = pytest.mark.skipif(not ANALYZE, reason="systemd-analyze is not installed")


def unit_lines(path: Path) -> dict[str, list[str]]:
    """Every Key=value of the unit (keys may repeat), comments dropped."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT])
def test_the_service_contract(unit):
    values = unit_lines(unit)
    assert values["Type"] == ["notify"]
    assert values["NotifyAccess"] == ["main"]
    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert values["Restart"] == ["on-failure"]
    assert values["StateDirectory"] == ["dupe-scanner"]
    assert "WatchdogSec" in values
    assert re.search(r"dupe-scanner run --config \S+settings\.toml$", values["ExecStart"][0])


def test_the_system_unit_is_hardened_as_promised():
    values = unit_lines(SYSTEM_UNIT)
    assert values["ExecStart"] == ["/opt/dupe-scanner/venv/bin/dupe-scanner run --config /etc/dupe-scanner/settings.toml"]
    assert values["ProtectSystem"] == ["strict"]
    assert values["ProtectHome"] == ["read-only"]
    assert values["User"] == ["dupe-scanner"]
    assert any("reports" in path for path in values["ReadWritePaths"])
    assert values["NoNewPrivileges"] == ["yes"]
    assert values["CapabilityBoundingSet"] == [""]


def test_the_sysusers_entry_creates_the_service_user():
    entries = [line.split() for line in SYSUSERS.read_text().splitlines() if line and not line.startswith("#")]
    assert entries[0][:2] == ["u", "dupe-scanner"]


def _runnable_copy(unit: Path, folder: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    text = unit.read_text()
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", text, flags=re.M)
    copy = folder / unit.name
    copy.write_text(text)
    return copy


@needs_analyze
def test_the_system_unit_verifies_clean(tmp_path):
    result = subprocess.run(
        [ANALYZE, "verify", str(_runnable_copy(SYSTEM_UNIT, tmp_path))], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "dupe-scanner" not in result.stderr, result.stderr


@needs_analyze
def test_the_user_unit_verifies_clean(tmp_path):
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "dupe-scanner").symlink_to(sys.executable)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(home / ".config")}
    units = tmp_path / "units"
    units.mkdir()
    copy = units / "dupe-scanner.service"
    shutil.copy(USER_UNIT, copy)
    result = subprocess.run([ANALYZE, "--user", "verify", str(copy)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "dupe-scanner" not in result.stderr, result.stderr


@needs_analyze
def test_the_system_unit_scores_ok_in_the_security_analysis():
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(SYSTEM_UNIT)], capture_output=True, text=True, timeout=120
    )
    match = re.search(r"Overall exposure level for dupe-scanner\.service: (\d+\.\d+)", result.stdout + result.stderr)
    if match is None and "--offline" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def _mdwe_supported() -> bool:
    """Linux 6.3+ lets a process refuse W+X memory on itself: the same rule as MemoryDenyWriteExecute."""
    script = f"import ctypes; raise SystemExit(ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0))"
    return subprocess.run([sys.executable, "-c", script]).returncode == 0


def test_the_program_runs_under_memory_deny_write_execute(tmp_path):
    """The unit sets MemoryDenyWriteExecute=yes; ctypes (watchdog's inotify), numpy, OpenCV and
    the rest must not need writable-executable memory."""
    if not _mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE")
    folder = tmp_path / "watched"
    folder.mkdir()
    script = textwrap.dedent(
        f"""
        import ctypes, importlib, sys
        assert ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0
        sys.path.insert(0, {str(REPO)!r})
        for name in ("dupe_scanner.cli", "dupe_scanner.service.watching", "dupe_scanner.service.notify", "dupe_scanner.service.config_reload",
                     "apscheduler.schedulers.background", "sqlalchemy", "numpy", "PIL.Image"):
            importlib.import_module(name)
        for optional in ("dupe_scanner.service.app", "dupe_scanner.backends.embedded", "cv2", "faiss"):
            try:
                importlib.import_module(optional)
            except ImportError:
                pass
        from dupe_scanner.service.watching import Watcher, NATIVE
        from dupe_scanner.settings import WatchSettings
        from pathlib import Path
        watcher = Watcher(lambda hint: None, mountinfo=lambda: "")
        watcher.apply([WatchSettings(path=Path({str(folder)!r}))])
        assert watcher.status()[0].mode == NATIVE, watcher.status()
        watcher.stop()
        print("OK")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr
