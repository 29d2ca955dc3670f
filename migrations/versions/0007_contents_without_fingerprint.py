"""How many contents have no fingerprint in ``feature_hashes``, kept by triggers.

Every command asks the embedded backend, at its start, which contents must be analysed
again (``store.fingerprints.outdated``): those of another analyser version, found on the
analyser's index, and those with no fingerprint at all, which only a crash or a forgotten
fingerprint leaves. The second was a pass over every content (0.45 s at a million files, 3.6 s
with a cold cache), asked of a state where it almost never finds one. With the count kept
in ``tallies``, that pass is made only when the count says there is something to find.

The triggers count on both sides: a content row added with no fingerprint or removed
without one, a fingerprint added to a known content or removed from one. The insert
triggers run BEFORE the row is written and only for a key not yet there, so an upsert or an
INSERT OR REPLACE of a row already present (``feature_hashes`` is written that way, by the
triggers of revision 0003) counts nothing; a replaced row's implicit deletion fires no
trigger (SQLite's recursive triggers are off).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NAME = "contents_without_fingerprint"
HAS_FINGERPRINT = "EXISTS (SELECT 1 FROM feature_hashes WHERE feature_hashes.hash = {key})"
IS_KNOWN = "EXISTS (SELECT 1 FROM contents WHERE contents.hash = {key})"


def _count(by: str) -> str:
    return f"UPDATE tallies SET value = value {by} WHERE name = '{NAME}';"


TRIGGERS = {
    "tally_content_added": f"""
        CREATE TRIGGER tally_content_added BEFORE INSERT ON contents
        WHEN NOT {IS_KNOWN.format(key="new.hash")} AND NOT {HAS_FINGERPRINT.format(key="new.hash")} BEGIN
            {_count("+ 1")}
        END""",
    "tally_content_removed": f"""
        CREATE TRIGGER tally_content_removed AFTER DELETE ON contents
        WHEN NOT {HAS_FINGERPRINT.format(key="old.hash")} BEGIN
            {_count("- 1")}
        END""",
    "tally_fingerprint_added": f"""
        CREATE TRIGGER tally_fingerprint_added BEFORE INSERT ON feature_hashes
        WHEN NOT {HAS_FINGERPRINT.format(key="new.hash")} AND {IS_KNOWN.format(key="new.hash")} BEGIN
            {_count("- 1")}
        END""",
    "tally_fingerprint_removed": f"""
        CREATE TRIGGER tally_fingerprint_removed AFTER DELETE ON feature_hashes
        WHEN {IS_KNOWN.format(key="old.hash")} BEGIN
            {_count("+ 1")}
        END""",
}


def upgrade() -> None:
    op.create_table("tallies", sa.Column("name", sa.String(64), primary_key=True), sa.Column("value", sa.Integer, nullable=False))
    op.execute(
        f"INSERT INTO tallies (name, value) SELECT '{NAME}', count(*) FROM contents"
        f" WHERE NOT {HAS_FINGERPRINT.format(key='contents.hash')}"
    )
    for statement in TRIGGERS.values():
        op.execute(statement)


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("tallies")
