"""The running service takes a decisions file dropped into reports/decisions, and the reports follow."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from dupe_scanner.service.app import Service
from dupe_scanner.service.notify import Notifier
from dupe_scanner.settings import parse_settings
from tests.service_helpers import save_image, smooth_image, wait_for


@pytest.mark.timeout(120)
def test_a_dropped_decisions_file_is_imported_once_and_splits_the_group(tmp_path):
    photos = tmp_path / "photos"
    save_image(smooth_image(1), photos / "a.png")
    save_image(smooth_image(1), photos / "b.jpg", quality=90)
    settings = parse_settings(
        {
            "paths": {"state": "state/state.db", "reports": "reports"},
            "watch": [{"path": "photos"}],
            "index": {"stable_seconds": 0.2, "workers": 1},
            "scan": {"debounce_seconds": 0.2, "schedule": "interval:1s"},
        },
        base_dir=tmp_path,
        source=None,
    )
    service = Service(settings, Notifier(None))
    thread = threading.Thread(target=service.run)
    thread.start()
    reports = tmp_path / "reports"
    try:
        # The reports are written one after another: the details may lag the summary by a moment.
        both = (reports / "duplicates.json", reports / "duplicates.details.json")
        wait_for(lambda: all("b.jpg" in _read(report) for report in both), timeout=60, what="the group")
        (group,) = json.loads((reports / "duplicates.details.json").read_text())["groups"]
        document = {
            "format": "dupe-scanner decisions",
            "version": 1,
            "decisions": [{"kind": "not-duplicates", "files": [{"content_hash": m["content_hash"]} for m in group["members"]]}],
        }
        dropped = reports / "decisions" / "review.json"
        dropped.parent.mkdir()
        dropped.write_text(json.dumps(document))
        past = time.time() - 60  # written a while ago: settled
        os.utime(dropped, (past, past))
        wait_for(lambda: json.loads(_read(reports / "duplicates.json") or "null") == {}, timeout=30, what="the split")
        assert sorted(p.name for p in dropped.parent.iterdir()) == ["review.json.imported"]
    finally:
        service.stop()
        thread.join(30)
    assert not thread.is_alive()


def _read(path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
