"""The real command line on the Flow backend, end to end, against the stand-in Flow server.

The first test runs the CLI as a subprocess (``python -m dupe_scanner``), the others call
``cli.main`` in this process; the stand-in runs in this process and records what arrived.
The stand-in's similarity is a perceptual hash, blind to rotation of the pixels, so only
the copies a hash sees are expected in a group (Flow itself sees more).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import call_main, run_cli, write_settings
from tests.flow_standin import FlowStandIn
from tests.flow_standin.pictures import picture
from tests.photos import copies_of, make_photo, save

HASH_VISIBLE_COPIES = ("small.jpg", "recompressed.jpg", "format.png", "format.webp", "bright.jpg", "exif.jpg", "copy.jpg")


def flow_settings(root: Path, standin: FlowStandIn, extra: str = "") -> Path:
    return write_settings(
        root,
        f"""
[backend]
kind = "flow"

[backend.flow]
url = "{standin.url}"
collection = "{standin.collection}"
connect_timeout = 1
read_timeout = 10
retries = 1
commit_every = 5

[index]
workers = 2
{extra}""",
    )


@pytest.fixture
def standin():
    with FlowStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, list[str], list[Path]]:
    """One photograph with its copies (in a folder with a hostile name) and three unrelated ones."""
    folder = tmp_path_factory.mktemp("flow-library") / "photos"
    original = save(make_photo(21, (800, 600)), folder / "original.jpg", quality=92)
    copies = copies_of(original, folder / "a b&c #d ?e=%41 ü", "photo")
    unrelated = [save(make_photo(30 + n, (640, 480)), folder / f"unrelated-{n}.jpg", quality=90) for n in range(3)]
    group = sorted([str(original)] + [str(p) for p in copies if p.name.removeprefix("photo-") in HASH_VISIBLE_COPIES])
    return folder, group, unrelated


def test_index_scan_status_on_flow(standin, photos, tmp_path):
    folder, group, unrelated = photos
    settings = flow_settings(tmp_path, standin)

    indexed = run_cli("index", "--dir", str(folder), config=settings)
    assert indexed.returncode == 0, indexed.stdout + indexed.stderr
    files = len([p for p in folder.rglob("*") if p.is_file()])
    # The byte-identical copy is hashed, not analysed: one analyze and one update per content.
    assert standin.counts["analyze"] == standin.counts["update"] == files - 1
    assert len(standin.documents) == files - 1  # all committed by the end of the run

    scanned = run_cli("scan", config=settings)
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    report = json.loads((tmp_path / "reports" / "duplicates.json").read_text())
    [found] = [sorted(paths) for paths in report.values() if str(folder / "original.jpg") in paths]
    assert set(group) <= set(found)
    assert not {str(p) for p in unrelated} & {path for paths in report.values() for path in paths}

    standin.reset_requests()
    again = run_cli("index", "--dir", str(folder), config=settings)
    rescanned = run_cli("scan", config=settings)
    assert again.returncode == 0 and rescanned.returncode == 0
    assert standin.counts["analyze"] == 0 and standin.counts["duplicate"] == 0  # nothing new: nothing sent

    status = run_cli("status", config=settings)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"backend: flow: Flow at {standin.url}, collection 'my-collection': {files - 1} documents" in status.stdout


def test_flow_down_is_one_clear_line(standin, photos, tmp_path):
    folder, _, _ = photos
    settings = flow_settings(tmp_path, standin)
    standin.refuse_connections()

    status = call_main("status", config=settings)
    indexed = call_main("index", "--dir", str(folder), config=settings)

    assert status.returncode == 1
    assert f"Flow at {standin.url} is not reachable: connection refused" in status.stdout
    assert indexed.returncode == 1
    assert "not reachable: connection refused" in indexed.stderr and "Traceback" not in indexed.stderr


def test_the_document_limit_stops_indexing_and_reports_still_work(standin, photos, tmp_path):
    folder, _, _ = photos
    standin.document_limit = 3
    settings = flow_settings(tmp_path, standin)

    indexed = call_main("index", "--dir", str(folder), config=settings)
    scanned = call_main("scan", config=settings)
    status = call_main("status", config=settings)

    assert indexed.returncode == 1
    assert "document limit" in indexed.stdout and "Traceback" not in indexed.stderr
    assert len(standin.documents) == 3
    assert scanned.returncode == 0 and (tmp_path / "reports" / "duplicates.json").exists()
    assert "pending" in status.stdout and "document limit" in status.stdout


def test_status_reports_drift_and_repair_fixes_it(standin, photos, tmp_path):
    folder, _, _ = photos
    settings = flow_settings(tmp_path, standin)
    assert call_main("index", "--dir", str(folder), config=settings).returncode == 0
    standin.put_document("indexed-by-someone-else", picture(1, (64, 48)))
    lost = sorted(standin.documents)[0]
    standin._latest.pop(lost)  # Flow lost a doc (e.g. a container started with --rm)
    standin._visible.pop(lost)

    status = call_main("status", config=settings)
    assert "1 in Flow but unknown to the state (indexed-by-someone-else)" in status.stdout
    assert f"1 indexed in the state but missing in Flow ({lost})" in status.stdout

    repaired = call_main("status", "--repair", config=settings)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "indexed-by-someone-else" not in standin.documents
    reindexed = call_main("index", "--dir", str(folder), config=settings)
    assert reindexed.returncode == 0 and lost in standin.documents
    assert "Flow and the state agree" in call_main("status", config=settings).stdout


def test_repair_waits_for_the_service_to_stop(standin, photos, tmp_path):
    """A repair while the service indexes could delete a document it has just stored."""
    import os

    from dupe_scanner.store.lock import hold_state

    folder, _, _ = photos
    settings = flow_settings(tmp_path, standin)
    assert call_main("index", "--dir", str(folder), config=settings).returncode == 0
    standin.put_document("indexed-by-someone-else", picture(1, (64, 48)))
    with hold_state(tmp_path / "state" / "state.db", "dupe-scanner run"):  # as the running service does
        refused = call_main("status", "--repair", config=settings)
    assert refused.returncode == 2
    assert f"not repaired: the state is in use by dupe-scanner run (pid {os.getpid()})" in refused.stdout
    assert "indexed-by-someone-else" in standin.documents

    assert call_main("status", "--repair", config=settings).returncode == 0
    assert "indexed-by-someone-else" not in standin.documents
