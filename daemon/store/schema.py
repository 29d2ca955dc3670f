"""The state database's tables. Alembic's migrations (``migrations/``) create them; this
module only describes them for queries. Change both together, with a new revision.

- ``files``: one row per path ever seen; the single source of truth for what is known.
- ``contents``: one row per distinct content (hash of the bytes) that has been analysed.
- ``features``: the embedded backend's fingerprints of a content; ``feature_hashes``: their
  hashes and analyser alone, for the queries that read every content.
- ``pairs``: contents that look alike, with their score, as the last scans found them.
- ``scans``: one row per scan, for ``status`` and the service's change detection.
- ``meta``: small facts about the state itself (which backend filled it, ...).
- ``tallies``: counts the state's triggers keep, so that a question rarely answered needs no
  pass over a table to find that nothing answers it.
- ``decisions`` and ``decision_contents``: what a person decided about duplicates
  (``keep``, ``not-duplicates``), keyed by content hash, with the path it was made on.

File paths are kept as they are on disk, whatever bytes a name holds (see ``NameText``).
"""

from __future__ import annotations

import re

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData()

_UNDECODABLE = re.compile("[\udc80-\udcff]")
_ESCAPED = re.compile("\x00([0-9a-f]{2})")


class NameText(TypeDecorator):
    """Text that may hold file names that are not valid UTF-8, stored losslessly as TEXT.

    A Linux file name is bytes. Python reads a byte that is not UTF-8 as a lone surrogate
    (U+DC80..U+DCFF, ``os.fsdecode``'s surrogateescape), which UTF-8 text (SQLite's)
    cannot hold. Each such byte is stored as NUL followed by its two hex digits
    (``caf\\xe9.jpg`` as ``caf<NUL>e9.jpg``): no path can contain NUL, so an escape is never
    a real name; a valid UTF-8 name is stored as itself (no migration); and escaping one
    character at a time keeps prefixes, so a folder's range query still finds its files.
    The sqlite3 shell shows such a name cut at the NUL.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return None if value is None else _UNDECODABLE.sub(lambda m: f"\x00{ord(m[0]) - 0xDC00:02x}", value)

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return None if value is None else _ESCAPED.sub(lambda m: chr(0xDC00 + int(m[1], 16)), value)


# File states. ``gone`` rows are kept briefly so a move can be recognised by inode and hash.
PENDING = "pending"
INDEXED = "indexed"
FAILED = "failed"
GONE = "gone"
FILE_STATES = (PENDING, INDEXED, FAILED, GONE)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", NameText, nullable=False, unique=True),
    Column("size", Integer, nullable=False),
    Column("mtime_ns", Integer, nullable=False),
    Column("inode", Integer, nullable=False),
    Column("device", Integer, nullable=False),
    Column("content_hash", String(64), ForeignKey("contents.hash", ondelete="SET NULL"), nullable=True),
    Column("state", String(16), nullable=False),
    Column("error", NameText, nullable=True),  # the reason names the file
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("seen_at", Float, nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("indexed_at", Float, nullable=True),
    Index("ix_files_state_next_attempt", "state", "next_attempt_at"),
    Index("ix_files_content_hash", "content_hash"),
    Index("ix_files_inode", "device", "inode"),
    # "Has anything changed since the last scan?" in two lookups (store.files.changed_since).
    Index("ix_files_changed_at", "changed_at"),
    Index("ix_files_indexed_at", "indexed_at"),
)

contents = Table(
    "contents",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("format", String(32), nullable=False),
    Column("analysed_at", Float, nullable=False),
    # True until a scan has compared this content with the others (incremental scans).
    Column("needs_scan", Boolean, nullable=False, default=True),
    # The file rows naming this content, whatever their state: kept by triggers on ``files``
    # (migration 0006), never written here. 0: no file holds it; 2 or more: byte-identical copies.
    Column("file_count", Integer, nullable=False, server_default="0"),
    Index("ix_contents_needs_scan", "needs_scan"),
    Index("ix_contents_file_count", "file_count"),
)

features = Table(
    "features",
    metadata,
    # No foreign key: the backend stores features before the indexer records the content.
    Column("hash", String(64), primary_key=True),
    Column("analyser", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# A copy of each features row's hashes and analyser, a hundred bytes where the row holds 20 KB,
# kept by triggers (migration 0003): scans and version checks read this, not ``features``.
feature_hashes = Table(
    "feature_hashes",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("analyser", String(64), nullable=False),
    Column("prefix", LargeBinary, nullable=False),  # the blob's first PREFIX_BYTES: magic and hashes
    Index("ix_feature_hashes_analyser", "analyser"),
)

pairs = Table(
    "pairs",
    metadata,
    Column("first", String(64), ForeignKey("contents.hash", ondelete="CASCADE"), primary_key=True),
    Column("second", String(64), ForeignKey("contents.hash", ondelete="CASCADE"), primary_key=True),
    Column("score", Float, nullable=False),
    Index("ix_pairs_second", "second"),
    # "Which contents match something?" reads the matching pairs alone, not every verdict (migration 0005).
    Index("ix_pairs_score", "score"),
)

scans = Table(
    "scans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("threshold", Float, nullable=False),
    Column("full", Boolean, nullable=False),
    Column("groups", Integer, nullable=True),
    Column("duplicate_files", Integer, nullable=True),
    Column("error", NameText, nullable=True),  # may name a report file
)

# Counts the state's triggers keep (migration 0007), never written here:
# ``contents_without_fingerprint``, the contents with no ``feature_hashes`` row.
tallies = Table(
    "tallies",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Decision kinds.
KEEP = "keep"  # this content is the one to keep in its group
NOT_DUPLICATES = "not-duplicates"  # no two of these contents are duplicates of each other
DECISION_KINDS = (KEEP, NOT_DUPLICATES)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("made_at", Float, nullable=False),
    Column("source", NameText, nullable=False),  # "command line", or the imported file's path
)

decision_contents = Table(
    "decision_contents",
    metadata,
    Column("decision_id", Integer, ForeignKey("decisions.id", ondelete="CASCADE"), primary_key=True),
    # No foreign key: the decision outlives the analysis of its contents.
    Column("content_hash", String(64), primary_key=True),
    Column("path", NameText, nullable=False),  # where the file was when the decision was made
    Index("ix_decision_contents_content_hash", "content_hash"),
)
