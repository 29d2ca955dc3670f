"""Decisions a person made about groups, keyed by content so they survive moves and re-indexing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("made_at", sa.Float, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
    )
    # No foreign key to contents: a content's analysis may be dropped and redone (a
    # backend switch, a file gone a while), and the decision must outlive it.
    op.create_table(
        "decision_contents",
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("decisions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
    )
    with op.batch_alter_table("decision_contents") as batch:
        batch.create_index("ix_decision_contents_content_hash", ["content_hash"])


def downgrade() -> None:
    with op.batch_alter_table("decision_contents") as batch:
        batch.drop_index("ix_decision_contents_content_hash")
    op.drop_table("decision_contents")
    op.drop_table("decisions")
