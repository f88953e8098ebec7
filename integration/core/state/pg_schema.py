"""The PostgreSQL state's schema: its numbered migrations, run in order at open.

The tables live in one PostgreSQL schema of their own (``integration`` unless told otherwise),
created if missing; ``schema_version`` in it holds how many migrations have run. As with the
SQLite file, a released migration never changes: a schema change is a new one at the end.

Several processes may open the same state at once (several workers): each migration runs in a
transaction that first takes a transaction-scoped advisory lock, then reads the version again,
so exactly one of them runs it and the others find it done.
"""

from __future__ import annotations

import logging
import re

import asyncpg

from .records import StateError

log = logging.getLogger("integration.core.store")

MIGRATIONS: list[str] = [
    # 1: the SQLite schema as it stands at its version 4, in PostgreSQL's types: the counters
    # that status() reads, the received pages, intents on the inbox rows. Keys that are
    # compared or ordered use the "C" collation: byte order, as SQLite orders them, whatever
    # the database's locale (map_iter's keyset pagination relies on the order being stable).
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY, position DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE inbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        payload TEXT NOT NULL,
        occurred_at DOUBLE PRECISION,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        received_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        intent_at DOUBLE PRECISION,
        UNIQUE (source, fingerprint)
    );
    CREATE INDEX inbox_pending ON inbox (source, seq) WHERE state = 'pending';
    CREATE INDEX inbox_age ON inbox (source, state, occurred_at);
    CREATE INDEX inbox_key ON inbox (source, key, seq);
    CREATE TABLE dead_letters (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        seq BIGINT REFERENCES inbox (seq),
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        blocking BOOLEAN NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        resolved_at DOUBLE PRECISION
    );
    CREATE INDEX dead_letters_open ON dead_letters (source, key) WHERE resolved_at IS NULL;
    CREATE INDEX dead_letters_seq ON dead_letters (seq);
    CREATE TABLE maps (
        namespace TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    );
    CREATE TABLE ledger (
        namespace TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (namespace, key)
    );
    CREATE INDEX ledger_age ON ledger (namespace, updated_at);
    CREATE TABLE counters (
        scope TEXT NOT NULL, name TEXT NOT NULL, count BIGINT NOT NULL,
        PRIMARY KEY (scope, name)
    );
    CREATE TABLE received (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source TEXT NOT NULL,
        body BYTEA NOT NULL,
        received_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 2: several workers (INBOX_URL). Each inbox row knows its partition (NULL until the state is
    # first run that way); the workers' heartbeats; who owns each partition, since which claim
    # (epoch: every write that depends on owning it checks it), and how far in the JetStream
    # stream its entries are stored; the poller role's epoch, which fences its cursor writes.
    """
    ALTER TABLE inbox ADD COLUMN part INTEGER;
    CREATE INDEX inbox_pending_part ON inbox (source, part, seq) WHERE state = 'pending';
    CREATE TABLE workers (
        sync TEXT NOT NULL, worker TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (sync, worker)
    );
    CREATE TABLE partitions (
        sync TEXT NOT NULL, part INTEGER NOT NULL, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0,
        stream_offset BIGINT NOT NULL DEFAULT 0, claimed_at DOUBLE PRECISION,
        PRIMARY KEY (sync, part)
    );
    CREATE TABLE fences (name TEXT PRIMARY KEY, epoch BIGINT NOT NULL, holder TEXT);
    """,
]

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def quoted_schema(name: str) -> str:
    """``name`` as a quoted identifier; only plain lower-case names are taken (they go into SQL
    text and the connection's search_path, where no parameter can stand for them)."""
    if not _IDENTIFIER.fullmatch(name):
        raise StateError(
            f"state schema {name!r}: use lower-case letters, digits and _ (at most 63)"
        )
    return f'"{name}"'


async def migrate(conn: asyncpg.Connection, schema: str, where: str) -> None:
    """Create ``schema`` if missing and run the migrations it has not had, each in its own
    transaction under an advisory lock (several workers may open it at once)."""
    quoted = quoted_schema(schema)
    while True:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"integration-migrate:{schema}"
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {quoted}.schema_version"
                " (single BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),"
                " version INTEGER NOT NULL)"
            )
            version = await conn.fetchval(f"SELECT version FROM {quoted}.schema_version") or 0
            if version > len(MIGRATIONS):
                raise StateError(
                    f"{where}: state schema version {version} is newer than this program "
                    f"understands ({len(MIGRATIONS)}); run the newer version"
                )
            if version == len(MIGRATIONS):
                return
            await conn.execute(f"SET LOCAL search_path TO {quoted}")
            await conn.execute(MIGRATIONS[version])
            await conn.execute(
                f"INSERT INTO {quoted}.schema_version (version) VALUES ($1)"
                " ON CONFLICT (single) DO UPDATE SET version = excluded.version",
                version + 1,
            )
        log.info("state schema %s migrated to version %d", schema, version + 1)


async def is_worker_state(conn: asyncpg.Connection, schema: str) -> bool:
    """Whether ``schema`` holds a state this program wrote (a look: nothing is created)."""
    quoted = quoted_schema(schema)
    found = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{quoted}.inbox")
    return bool(found)
