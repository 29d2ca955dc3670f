"""How many file rows hold each content, kept by triggers.

Every scan asks which contents no file holds any more (to forget them) and which more than
one file holds (byte-identical copies, grouped whatever their pictures match). Each question
was a pass over every content or every file's content (0.5 s and 0.25 s at a million files,
several seconds with a cold cache); with the count beside each content, and an index on it,
each is a lookup of the few that answer. The triggers count a file row whenever one names
the content, is renamed to another or is deleted (a content's deletion sets its files' link
to NULL, which the update trigger sees), so no code path can leave the count behind.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TRIGGERS = {
    "contents_file_count_on_insert": """
        CREATE TRIGGER contents_file_count_on_insert AFTER INSERT ON files
        WHEN new.content_hash IS NOT NULL BEGIN
            UPDATE contents SET file_count = file_count + 1 WHERE hash = new.content_hash;
        END""",
    "contents_file_count_on_update": """
        CREATE TRIGGER contents_file_count_on_update AFTER UPDATE OF content_hash ON files
        WHEN old.content_hash IS NOT new.content_hash BEGIN
            UPDATE contents SET file_count = file_count - 1 WHERE hash = old.content_hash;
            UPDATE contents SET file_count = file_count + 1 WHERE hash = new.content_hash;
        END""",
    "contents_file_count_on_delete": """
        CREATE TRIGGER contents_file_count_on_delete AFTER DELETE ON files
        WHEN old.content_hash IS NOT NULL BEGIN
            UPDATE contents SET file_count = file_count - 1 WHERE hash = old.content_hash;
        END""",
}


def upgrade() -> None:
    # In place (ALTER TABLE), never by batch mode's copy of the table: see ``downgrade``.
    op.add_column("contents", sa.Column("file_count", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        "UPDATE contents SET file_count = counted.files FROM"
        " (SELECT content_hash, count(*) AS files FROM files WHERE content_hash IS NOT NULL GROUP BY content_hash) AS counted"
        " WHERE contents.hash = counted.content_hash"
    )
    op.create_index("ix_contents_file_count", "contents", ["file_count"])
    for statement in TRIGGERS.values():
        op.execute(statement)


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # In place (SQLite 3.35's DROP COLUMN), not by batch mode's copy of the table: dropping the
    # old ``contents`` would delete every pair and unlink every file by their foreign keys.
    op.drop_index("ix_contents_file_count", table_name="contents")
    op.drop_column("contents", "file_count")
