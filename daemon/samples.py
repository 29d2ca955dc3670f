"""The files an install needs beside the program: the documented sample settings and the
systemd units. They live at the top of the repository (``settings.toml``, ``systemd/``)
and are shipped inside the package as ``daemon/data/``, so that an install without the
repository (pip, pipx) can print them: ``dupe-scanner sample NAME``.
"""

from __future__ import annotations

from importlib.resources import files

# name on the command line -> file under daemon/data/
SAMPLES = {
    "settings": "settings.toml",
    "unit": "systemd/dupe-scanner.service",
    "user-unit": "systemd/dupe-scanner-user.service",
    "sysusers": "systemd/dupe-scanner.sysusers",
}

DESCRIPTIONS = {
    "settings": "the documented default settings.toml, every key with a comment",
    "unit": "the system unit, dupe-scanner.service (hardened; runs as the dupe-scanner user)",
    "user-unit": "the user unit, for systemctl --user (its header says how to install it)",
    "sysusers": "the sysusers.d entry that creates the dupe-scanner user",
}


def sample_text(name: str) -> str:
    """The text of the shipped file ``name`` (one of ``SAMPLES``)."""
    return files("dupe_scanner").joinpath("data", *SAMPLES[name].split("/")).read_text(encoding="utf-8")
