"""The state database: its schema, the connection's rules, and the store functions."""

# How long a unit of work waits for the write lock another process holds before it gives
# up with one line (SQLite's busy timeout). The command line's --lock-wait overrides it.
LOCK_WAIT_SECONDS = 30.0
