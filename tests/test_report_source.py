"""What a scan's reports are made from: the digest that tells a scan its reports would come out the same."""

from dataclasses import replace
from pathlib import Path

import pytest

from dupe_scanner import code_version, report_source
from dupe_scanner.decisions import DecidedContent, Decision, Decisions
from dupe_scanner.groups import FileEntry
from dupe_scanner.report_source import WrittenReports, source_digest
from dupe_scanner.store.schema import KEEP

PAIRS = [("h1", "h2", 0.93), ("h2", "h3", 0.42)]
ENTRIES = [
    FileEntry("/photos/a.jpg", 1000, 1.7e9, 800, 600, "JPEG", "h1"),
    FileEntry("/photos/b.png", 2000, 1.7e9, 400, 300, "PNG", "h2"),
    FileEntry("/photos/odd \udcff name.jpg", 3000, 1.7e9, 800, 600, "JPEG", "h3"),  # not valid UTF-8 on disk
]
DECISIONS = Decisions((Decision(1, KEEP, 1.7e9, "review", (DecidedContent("h1", "/photos/a.jpg"),)),))


def digest(**changes) -> str:
    arguments = {"inputs": "(0.6, ...)", "unscored_are_far": False, "content_pairs": PAIRS, "entries": ENTRIES, "decisions": DECISIONS}
    return source_digest(**{**arguments, **changes})


def test_the_same_sources_give_the_same_digest_whatever_the_order_of_the_pairs():
    assert digest() == digest(content_pairs=list(reversed(PAIRS)))


@pytest.mark.parametrize(
    "changes",
    [
        {"inputs": "(0.7, ...)"},
        {"unscored_are_far": True},
        {"content_pairs": [("h1", "h2", 0.94), ("h2", "h3", 0.42)]},
        {"content_pairs": PAIRS[:1]},
        {"entries": [replace(ENTRIES[0], mtime=1.8e9), *ENTRIES[1:]]},
        {"entries": [replace(ENTRIES[0], path="/photos/moved/a.jpg"), *ENTRIES[1:]]},
        {"entries": ENTRIES[:2]},
        {"decisions": Decisions()},
    ],
    ids=["inputs", "backend", "a score", "a pair", "a file's time", "a file moved", "a file gone", "decisions"],
)
def test_every_source_of_the_reports_changes_the_digest(changes):
    assert digest(**changes) != digest()


def test_other_code_changes_the_digest(monkeypatch):
    before = digest()
    monkeypatch.setattr(report_source, "code_digest", lambda: "the next release")
    assert digest() != before


def test_a_change_to_any_module_of_the_package_changes_the_code_digest(monkeypatch):
    code_version.code_digest.cache_clear()
    before = code_version.code_digest()
    real = Path.read_bytes

    def edited(path: Path) -> bytes:
        return real(path) + (b"# edited" if path.name == "keep.py" else b"")

    monkeypatch.setattr(Path, "read_bytes", edited)
    code_version.code_digest.cache_clear()
    try:
        assert code_version.code_digest() != before
    finally:
        monkeypatch.undo()
        code_version.code_digest.cache_clear()
    assert code_version.code_digest() == before


def test_a_record_of_an_older_version_reads_as_none():
    files = (("duplicates.json", 120, 1_700_000_000_000_000_000, 42),)
    written = WrittenReports("d" * 64, files, groups=3, duplicate_files=7, html_pages=1, html_omitted_groups=0)
    assert WrittenReports.decoded(written.encoded()) == written
    assert WrittenReports.decoded('{"digest": "x"}') is None
    assert WrittenReports.decoded('{"digest": "x", "files": [["a", 1]], "groups": 1}') is None
    assert WrittenReports.decoded("[1, 2]") is None
    assert WrittenReports.decoded("not json") is None
    assert WrittenReports.decoded(None) is None
