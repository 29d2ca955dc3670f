"""The service imports decisions files dropped into reports/decisions once, and sets them aside."""

import json
import logging
import os

from dupe_scanner.service.decision_inbox import import_dropped
from dupe_scanner.store import decisions as decision_store
from dupe_scanner.store.database import open_state, read_transaction

A, B = "a" * 64, "b" * 64


def drop(folder, name: str, document, age: float = 60.0):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(document) if not isinstance(document, str) else document, encoding="utf-8")
    when = 1_000_000.0 - age
    os.utime(path, (when, when))
    return path


def test_a_dropped_file_is_imported_once_and_renamed(tmp_path):
    engine = open_state(tmp_path / "state.db")
    inbox = tmp_path / "reports" / "decisions"
    decision = {"kind": "not-duplicates", "files": [{"content_hash": A}, {"content_hash": B}]}
    document = {"format": "dupe-scanner decisions", "version": 1, "decisions": [decision]}
    drop(inbox, "review.json", document)
    assert import_dropped(engine, tmp_path / "reports", now=1_000_000.0, settled_seconds=5) == 1
    assert sorted(p.name for p in inbox.iterdir()) == ["review.json.imported"]
    drop(inbox, "review.json", document)  # the same export saved again
    assert import_dropped(engine, tmp_path / "reports", now=1_000_000.0, settled_seconds=5) == 1
    assert sorted(p.name for p in inbox.iterdir()) == ["review.json.imported", "review.json.imported-2"]
    with read_transaction(engine) as connection:
        assert decision_store.count(connection) == 1


def test_a_bad_file_is_rejected_with_its_reasons_and_a_fresh_one_waits(tmp_path, caplog):
    engine = open_state(tmp_path / "state.db")
    inbox = tmp_path / "reports" / "decisions"
    drop(inbox, "broken.json", '{"format": ')
    drop(inbox, "fresh.json", "{}", age=1.0)
    with caplog.at_level(logging.WARNING):
        assert import_dropped(engine, tmp_path / "reports", now=1_000_000.0, settled_seconds=5) == 0
    assert sorted(p.name for p in inbox.iterdir()) == ["broken.json.rejected", "fresh.json"]
    assert "not valid JSON" in caplog.text
    assert import_dropped(engine, tmp_path / "nowhere", now=1_000_000.0, settled_seconds=5) == 0
