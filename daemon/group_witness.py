"""Whether a scan's changes can have moved a group, told from the changes alone.

A scan that changed something must show the groups that changed. The digest
(``report_source``) says the groups are the last reports' only after reading everything
they are made from: the pairs among matching pictures and the files holding them, 2 to 3 s
at a million files, at every scan of a new picture that matches nothing (most new
photographs) or of a deleted one that matched nothing. Yet what such a scan changed can be
told apart from what the groups are made of without reading that:

- since the last reports, the stored pairs were written by this scan alone
  (``content_store.pairs_revision``), and none it stored or deleted names a matching
  picture: a picture that matches nothing is in no group, and grouping weighs none of its
  pairs (``content_store.pairs_grouping_weighs``);
- no file changed since then is one the last reports were made from (their paths are kept,
  ``ReportedFiles``), holds a matching picture, or holds a byte-identical copy;
- and the settings, decisions and code are the last scan's (the caller's to check).

Then the groups are the last reports', and so are their digest and the record of their
files. Anything else, and the scan reads and digests what the groups are made from.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from dupe_scanner.store import contents as content_store
from dupe_scanner.store import files as file_store
from dupe_scanner.values import ScoredPair

REPORTED_FILES_KEY = "reported_files"  # in ``meta``: the last reports' ``ReportedFiles``
# Past this many files changed since the last scan, reading what the groups are made from
# costs less than asking of each file.
CHANGED_FILES_AT_MOST = 10_000


@dataclass(frozen=True)
class ReportedFiles:
    """The files the reports of ``digest`` were made from, as 64-bit keys of their paths
    (``path_key``; two paths sharing a key only make a scan read what it need not), and the
    ``pairs_revision`` the pairs they were made from had."""

    digest: str
    pairs_revision: int
    path_keys: np.ndarray  # sorted, unique

    @classmethod
    def of(cls, digest: str, pairs_revision: int, paths: Iterable[str]) -> ReportedFiles:
        return cls(digest, pairs_revision, np.unique(np.fromiter((path_key(path) for path in paths), dtype=np.uint64)))

    def holds(self, path: str) -> bool:
        key = np.uint64(path_key(path))
        at = int(np.searchsorted(self.path_keys, key))
        return at < len(self.path_keys) and self.path_keys[at] == key

    def at_revision(self, pairs_revision: int) -> ReportedFiles:
        return ReportedFiles(self.digest, pairs_revision, self.path_keys)

    def encoded(self) -> str:
        keys = base64.b64encode(self.path_keys.astype("<u8").tobytes()).decode("ascii")
        return json.dumps({"digest": self.digest, "pairs_revision": self.pairs_revision, "path_keys": keys})

    @classmethod
    def decoded(cls, text: str | None) -> ReportedFiles | None:
        """The record in ``text``, or None if there is none or it is not one."""
        try:
            record = json.loads(text) if text else None
            if not isinstance(record, dict):
                return None
            keys = np.frombuffer(base64.b64decode(record["path_keys"], validate=True), dtype="<u8")
            # Sorted again: ``holds`` searches them, and a key it missed would keep reports a file left.
            return cls(str(record["digest"]), int(record["pairs_revision"]), np.unique(keys.astype(np.uint64)))
        except (TypeError, ValueError, KeyError):
            return None


def path_key(path: str) -> int:
    # surrogatepass: a path that is not valid UTF-8 is held with lone surrogates.
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class Witness:
    """Sees each write a scan makes to the pairs, in the transaction that makes it, and
    tells whether one can have moved a group (``moved``) and how many it saw (``writes``,
    each counted once by ``pairs_revision``)."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.moved = False
        self.writes = 0

    def forgetting(self, connection: Connection, contents: Sequence[str], file_rows: int) -> None:
        """Before ``contents`` no file holds and ``file_rows`` rows of long-gone files are
        forgotten. A gone file's row is in no group, but it can make its content a copy."""
        if contents:
            self.writes += 1
            self.moved = self.moved or content_store.any_matching(connection, contents, self.threshold)
        self.moved = self.moved or file_rows > 0

    def storing(self, connection: Connection, compared: Sequence[str], found: Iterable[ScoredPair]) -> None:
        """Before the pairs ``found`` replace the stored pairs of the contents ``compared``."""
        self.writes += 1
        if self.moved:
            return
        among = set(compared)
        if any(pair.score >= self.threshold or not among.intersection((pair.first, pair.second)) for pair in found):
            self.moved = True
        else:
            self.moved = content_store.any_matching(connection, compared, self.threshold)

    def rewriting(self) -> None:
        """Every content is to be compared again, or stored pairs are scored again."""
        self.moved = True


def groups_unmoved(connection: Connection, witness: Witness, reported: ReportedFiles, since: float) -> bool:
    """Are the groups the ones the ``reported`` files made, given what ``witness`` saw and the
    files changed at or after ``since``? False whenever that cannot be told cheaply."""
    if witness.moved or content_store.pairs_revision(connection) != reported.pairs_revision + witness.writes:
        return False
    changed = file_store.files_changed_since(connection, since, CHANGED_FILES_AT_MOST)
    if changed is None or any(reported.holds(path) for path, _ in changed):
        return False
    held = {content for _, content in changed if content is not None}
    return not (content_store.any_matching(connection, held, witness.threshold) or file_store.any_copied(connection, held))
