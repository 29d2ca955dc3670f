"""Running the real command line as a subprocess, as a user or a script would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(*arguments: str, config: Path | None = None, timeout: float = 600, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dupe_scanner", *arguments]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=config.parent if config else REPO, stdin=stdin)


def write_settings(folder: Path, extra: str = "") -> Path:
    path = folder / "settings.toml"
    path.write_text(f'[paths]\nstate = "state/state.db"\nreports = "reports"\n{extra}', encoding="utf-8")
    return path
