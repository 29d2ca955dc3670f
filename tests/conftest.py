"""Fixtures shared by several test modules (pytest finds them here; no import needed),
and the stand-in Flow server's (flow_standin, flow_settings, flow_backend), loaded as a plugin."""

from __future__ import annotations

import pytest

from dupe_scanner.groups import DuplicateGroup, FileEntry
from tests.disks import tmpfs_mounts
from tests.report_helpers import ALERT, CANARY, OTHER_NAMES, SCRIPT_BREAKER, entry, group, make_image

pytest_plugins = ["tests.flow_standin.fixtures"]


@pytest.fixture
def photos(tmp_path) -> dict[str, FileEntry]:
    folder = tmp_path / "photos"
    entries = {}
    for index, name in enumerate((CANARY, ALERT, *OTHER_NAMES)):
        size = (800, 600) if name == "big.jpg" else (400, 300)
        path = make_image(folder / name, size=size, color=(40 * index % 256, 90, 160))
        entries[name] = entry(path, *size, fmt="PNG" if name.endswith(".png") else "JPEG")
    breaker = make_image(folder.joinpath(*SCRIPT_BREAKER))
    entries["breaker"] = entry(breaker)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    entries["broken"] = FileEntry(str(broken), broken.stat().st_size, broken.stat().st_mtime, 10, 10, "JPEG", "hash-broken")
    return entries


@pytest.fixture
def groups(photos) -> list[DuplicateGroup]:
    p = photos
    return [
        group(p["big.jpg"], [p[CANARY], p[ALERT], p["breaker"]], [1.0, 0.85, 0.7], extra={(p[CANARY], p[ALERT]): 0.93}),
        group(p["plain.jpg"], [p["new\nline.jpg"]], [0.62]),
        group(p["ünïcödé 写真.jpg"], [p["q\"uote's & ampersand.png"], p["broken"]], [0.95, 0.61]),
    ]


@pytest.fixture
def tiny_disk():
    """``tiny_disk(folder, size)``: a small tmpfs mounted at ``folder`` for the test (``tests.disks``)."""
    with tmpfs_mounts() as mount:
        yield mount
