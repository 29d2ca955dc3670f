"""What an install gets: the version, the files beside the program (settings, units),
the wheel's contents and metadata, and commands that start without the analysis stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.cli import REPO, run_cli, write_settings

SHIPPED = {
    "settings": "settings.toml",
    "unit": "systemd/dupe-scanner.service",
    "user-unit": "systemd/dupe-scanner-user.service",
    "sysusers": "systemd/dupe-scanner.sysusers",
}
HEAVY = ("cv2", "numpy", "faiss", "PIL", "pillow_heif", "sqlalchemy", "alembic", "networkx", "pyvis", "tqdm")


def test_version_is_the_installed_one():
    expected = f"dupe-scanner {version('dupe-scanner')}"
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == expected
    console = Path(sys.executable).parent / "dupe-scanner"
    installed = subprocess.run([str(console), "--version"], capture_output=True, text=True, timeout=60)
    assert installed.stdout.strip() == expected


@pytest.mark.parametrize("name, path", SHIPPED.items())
def test_sample_prints_the_shipped_file(name, path, tmp_path):
    # No settings file is read: a broken one must not stand in the way of a fresh sample.
    (tmp_path / "settings.toml").write_text("not toml [", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "dupe_scanner", "sample", name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / path).read_text(encoding="utf-8")


def test_sample_names_an_unknown_file_as_bad_usage():
    result = run_cli("sample", "nonsense")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


@pytest.mark.parametrize("arguments", [["--help"], ["check-config"], ["--version"], ["sample", "settings"]])
def test_light_commands_do_not_import_the_analysis_stack(arguments, tmp_path):
    config = write_settings(tmp_path, f'[[watch]]\npath = "{tmp_path}"\n')
    probe = (
        "import sys\n"
        "from dupe_scanner.cli import main\n"
        "try:\n"
        f"    code = main({[*arguments, '--config', str(config)] if arguments == ['check-config'] else arguments!r})\n"
        "except SystemExit as end:\n"
        "    code = end.code\n"
        f"heavy = sorted(name for name in {HEAVY!r} if name in sys.modules)\n"
        "print('HEAVY', ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "HEAVY", result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Iterator[zipfile.ZipFile]:
    """The wheel, built from a copy of the working tree (setuptools reuses a stale build/)."""
    source = tmp_path_factory.mktemp("source") / "dupe-scanner"
    anywhere = shutil.ignore_patterns("__pycache__", "*.egg-info")
    at_top = {".git", ".venv", "build", ".pytest_cache", "state", "reports", "bench"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(anywhere(folder, names)) | (at_top & set(names) if Path(folder) == REPO else set())

    shutil.copytree(REPO, source, symlinks=True, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--quiet", "-w", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("dupe_scanner-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_ships_the_settings_and_the_units(wheel):
    for path in SHIPPED.values():
        assert wheel.read(f"dupe_scanner/data/{path}") == (REPO / path).read_bytes(), path
    assert "dupe_scanner/migrations/script.py.mako" in wheel.namelist()


def test_the_wheel_ships_the_license_and_complete_metadata(wheel):
    names = wheel.namelist()
    (info,) = {name.split("/")[0] for name in names if name.split("/")[0].endswith(".dist-info")}
    assert wheel.read(f"{info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
    metadata = wheel.read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "Classifier: Operating System :: POSIX :: Linux" in metadata
    assert "Requires-Python: >=3.11" in metadata
    # Only the package: no tests, benchmarks or a top-level "migrations" module.
    assert {name.split("/")[0] for name in names} == {"dupe_scanner", info}


def test_the_wheel_ships_every_module_of_the_package(wheel):
    names = set(wheel.namelist())
    # The code lives in daemon/ and installs as dupe_scanner/.
    modules = {
        "dupe_scanner/" + str(path.relative_to(REPO / "daemon"))
        for path in (REPO / "daemon").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert modules - names == set()
