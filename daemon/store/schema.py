"""The state database's tables. Alembic's migrations (``migrations/``) create them; this
module only describes them for queries. Change both together, with a new revision.

- ``files``: one row per path ever seen; the single source of truth for what is known.
- ``contents``: one row per distinct content (hash of the bytes) that has been analysed.
- ``features``: the embedded backend's fingerprints of a content.
- ``pairs``: contents that look alike, with their score, as the last scans found them.
- ``scans``: one row per scan, for ``status`` and the service's change detection.
- ``meta``: small facts about the state itself (which backend filled it, ...).
- ``decisions`` and ``decision_contents``: what a person decided about duplicates
  (``keep``, ``not-duplicates``), keyed by content hash, with the path it was made on.
"""

from __future__ import annotations

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
)

metadata = MetaData()

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
    Column("path", Text, nullable=False, unique=True),
    Column("size", Integer, nullable=False),
    Column("mtime_ns", Integer, nullable=False),
    Column("inode", Integer, nullable=False),
    Column("device", Integer, nullable=False),
    Column("content_hash", String(64), ForeignKey("contents.hash", ondelete="SET NULL"), nullable=True),
    Column("state", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("seen_at", Float, nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("indexed_at", Float, nullable=True),
    Index("ix_files_state_next_attempt", "state", "next_attempt_at"),
    Index("ix_files_content_hash", "content_hash"),
    Index("ix_files_inode", "device", "inode"),
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
    Index("ix_contents_needs_scan", "needs_scan"),
)

features = Table(
    "features",
    metadata,
    # No foreign key: the backend stores features before the indexer records the content.
    Column("hash", String(64), primary_key=True),
    Column("analyser", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

pairs = Table(
    "pairs",
    metadata,
    Column("first", String(64), ForeignKey("contents.hash", ondelete="CASCADE"), primary_key=True),
    Column("second", String(64), ForeignKey("contents.hash", ondelete="CASCADE"), primary_key=True),
    Column("score", Float, nullable=False),
    Index("ix_pairs_second", "second"),
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
    Column("error", Text, nullable=True),
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
    Column("source", Text, nullable=False),  # "command line", or the imported file's path
)

decision_contents = Table(
    "decision_contents",
    metadata,
    Column("decision_id", Integer, ForeignKey("decisions.id", ondelete="CASCADE"), primary_key=True),
    # No foreign key: the decision outlives the analysis of its contents.
    Column("content_hash", String(64), primary_key=True),
    Column("path", Text, nullable=False),  # where the file was when the decision was made
    Index("ix_decision_contents_content_hash", "content_hash"),
)
