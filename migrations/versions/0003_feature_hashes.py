"""The embedded backend's hashes in a small table of their own, kept by triggers.

A scan reads every content's hashes (the neighbour index is built from them), and the
``features`` rows they sat in hold about 20 KB each: SQLite reads a whole value to take a
substring of it, so each scan read the whole table, 20 GB at a million pictures. The
version checks (which contents an older analyser made) read every row too. The triggers
copy the blob's prefix (the format's magic and eight 64-bit hashes: 68 bytes, see
``dupe_scanner.analysis.features.PREFIX_BYTES``) and its analyser whenever a row is written, and
drop it with the row, so no code path can leave the two apart.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PREFIX_BYTES = 68  # of the feature file format DSF3; a new layout needs a new revision

TRIGGERS = {
    "feature_hashes_on_insert": f"""
        CREATE TRIGGER feature_hashes_on_insert AFTER INSERT ON features BEGIN
            INSERT OR REPLACE INTO feature_hashes (hash, analyser, prefix)
            VALUES (new.hash, new.analyser, substr(new.data, 1, {PREFIX_BYTES}));
        END""",
    "feature_hashes_on_update": f"""
        CREATE TRIGGER feature_hashes_on_update AFTER UPDATE ON features BEGIN
            DELETE FROM feature_hashes WHERE hash = old.hash;
            INSERT OR REPLACE INTO feature_hashes (hash, analyser, prefix)
            VALUES (new.hash, new.analyser, substr(new.data, 1, {PREFIX_BYTES}));
        END""",
    "feature_hashes_on_delete": """
        CREATE TRIGGER feature_hashes_on_delete AFTER DELETE ON features BEGIN
            DELETE FROM feature_hashes WHERE hash = old.hash;
        END""",
}


def upgrade() -> None:
    op.create_table(
        "feature_hashes",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("analyser", sa.String(64), nullable=False),
        sa.Column("prefix", sa.LargeBinary, nullable=False),
    )
    with op.batch_alter_table("feature_hashes") as batch:
        batch.create_index("ix_feature_hashes_analyser", ["analyser"])
    op.execute(f"INSERT INTO feature_hashes (hash, analyser, prefix) SELECT hash, analyser, substr(data, 1, {PREFIX_BYTES}) FROM features")
    for statement in TRIGGERS.values():
        op.execute(statement)


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("feature_hashes")
