"""Several worker processes on one sync: JetStream carries the inbox's entries from the one
poller to the partitions' owners, PostgreSQL keeps the state (see ``docs/distributed.md``).

Nothing here is imported unless ``INBOX_URL`` is set: one process on SQLite needs neither
nats-py nor asyncpg.
"""
