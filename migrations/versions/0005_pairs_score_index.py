"""An index on the pairs' score, for "which contents match something?".

Every scan that compared anything, ``decide`` and ``apply`` ask which contents have a pair
scoring the threshold or more (``store.contents.matched_contents``): what the groups are made
of. The pairs table holds every verdict a scan made, rejected ones too (so that no pair is
compared twice), about nine a picture in a library of real pictures; without this index
that question read all of them, every time, where it now reads only the pairs that match.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pairs") as batch:
        batch.create_index("ix_pairs_score", ["score"])


def downgrade() -> None:
    with op.batch_alter_table("pairs") as batch:
        batch.drop_index("ix_pairs_score")
