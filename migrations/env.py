"""Alembic environment: the program runs migrations itself at start (never by hand).

``dupe_scanner.store.database.open_state`` passes its connection in ``config.attributes``;
each revision runs in the same transaction as the record that it ran.
"""

from alembic import context

from dupe_scanner.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
