"""The initial state: files, contents, features, pairs, scans, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contents",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("analysed_at", sa.Float, nullable=False),
        sa.Column("needs_scan", sa.Boolean, nullable=False),
    )
    op.create_index("ix_contents_needs_scan", "contents", ["needs_scan"])
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("mtime_ns", sa.Integer, nullable=False),
        sa.Column("inode", sa.Integer, nullable=False),
        sa.Column("device", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), sa.ForeignKey("contents.hash", ondelete="SET NULL"), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("indexed_at", sa.Float, nullable=True),
    )
    op.create_index("ix_files_state_next_attempt", "files", ["state", "next_attempt_at"])
    op.create_index("ix_files_content_hash", "files", ["content_hash"])
    op.create_index("ix_files_inode", "files", ["device", "inode"])
    op.create_table(
        "features",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("analyser", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "pairs",
        sa.Column("first", sa.String(64), sa.ForeignKey("contents.hash", ondelete="CASCADE"), primary_key=True),
        sa.Column("second", sa.String(64), sa.ForeignKey("contents.hash", ondelete="CASCADE"), primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
    )
    op.create_index("ix_pairs_second", "pairs", ["second"])
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("full", sa.Boolean, nullable=False),
        sa.Column("groups", sa.Integer, nullable=True),
        sa.Column("duplicate_files", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("meta", "scans", "pairs", "features", "files", "contents"):
        op.drop_table(table)
