"""What a scan's reports are made from, as one digest: when it has not changed, neither have they.

A scan of new pictures that match nothing (most new photographs) leaves every group as it
was, yet forming the groups, reviewing them and rendering every report only to find them
unchanged is most of such a scan at scale: 6 s of 11 at a million files with 19,445
groups. So a scan first reads what grouping reads (the pairs among matching pictures, the
files holding them, the decisions) and digests it with the scan's inputs and the code; the
state keeps the digest of the last reports written, with their counts (``WrittenReports``).
The same digest means the same groups and the same reports.

The code counts too (``code_version``): an upgrade writes the reports again once, whatever
it changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from dupe_scanner.code_version import code_digest
from dupe_scanner.decisions import Decisions
from dupe_scanner.groups import FileEntry
from dupe_scanner.reports import FileStamp


@dataclass(frozen=True)
class WrittenReports:
    """The last reports written: from what (``digest``), the files as written (so one
    replaced since, by hand or by another version, is noticed), and what the scan counted."""

    digest: str
    files: tuple[FileStamp, ...]
    groups: int
    duplicate_files: int
    html_pages: int
    html_omitted_groups: int

    def encoded(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decoded(cls, text: str | None) -> WrittenReports | None:
        """The record in ``text``, or None if there is none or it is not one (an older version's)."""
        try:
            record = json.loads(text) if text else None
            if not isinstance(record, dict):
                return None
            files = tuple((str(name), int(size), int(mtime), int(inode)) for name, size, mtime, inode in record.pop("files"))
            return cls(files=files, **record)
        except (TypeError, ValueError, KeyError):
            return None


def source_digest(
    inputs: str,
    unscored_are_far: bool,
    content_pairs: Iterable[tuple[str, str, float]],
    entries: Iterable[FileEntry],
    decisions: Decisions,
) -> str:
    """One digest of everything the groups and reports are made from."""
    digest = hashlib.sha256()
    # repr, not str: a path that is not valid UTF-8 (lone surrogates) is written as escapes.
    for part in (code_digest(), inputs, repr(unscored_are_far), repr(decisions.all)):
        digest.update(repr(part).encode("ascii", "backslashreplace") + b"\n")
    for pair in sorted(content_pairs):
        digest.update(repr(pair).encode("ascii", "backslashreplace"))
    digest.update(b"\nfiles\n")
    for entry in entries:
        fields = (entry.path, entry.size, entry.mtime, entry.width, entry.height, entry.format, entry.content_hash)
        digest.update(repr(fields).encode("ascii", "backslashreplace"))
    return digest.hexdigest()
