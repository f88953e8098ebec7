"""The state file's schema: the numbered migrations that build it, run in order at open.

``PRAGMA user_version`` holds how many have run. A migration, once released, never changes:
existing state files are at its version and would not run it again. A new schema change is a
new migration at the end.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

import aiosqlite

from .records import StateError

log = logging.getLogger("integration.core.store")
"""The logger the store has always logged under (before it was split into this package)."""

RECOUNT = """
    DELETE FROM counters;
    INSERT INTO counters (scope, name, count)
        SELECT 'inbox:' || source, state, COUNT(*) FROM inbox GROUP BY source, state;
    INSERT INTO counters (scope, name, count)
        SELECT 'dead_letters:' || source, 'open', COUNT(*) FROM dead_letters
        WHERE resolved_at IS NULL GROUP BY source;
    INSERT INTO counters (scope, name, count)
        SELECT 'dead_letters:' || source, 'blocked_keys', COUNT(DISTINCT key) FROM dead_letters
        WHERE resolved_at IS NULL AND blocking = 1 GROUP BY source;
    INSERT INTO counters (scope, name, count)
        SELECT 'maps', namespace, COUNT(*) FROM maps GROUP BY namespace;
"""
"""The counters computed afresh from the rows (a scan: seconds at a million entries). Migration 3
runs it once; a later migration that adds, deletes or moves inbox, dead-letter or map rows in
SQL of its own must end with it too (or keep the counters by delta, as the store's writes do)."""

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE cursors (name TEXT PRIMARY KEY, position REAL NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        payload TEXT NOT NULL,
        occurred_at REAL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        received_at REAL NOT NULL,
        finished_at REAL,
        UNIQUE (source, fingerprint)
    );
    CREATE INDEX inbox_pending ON inbox (source, seq) WHERE state = 'pending';
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        seq INTEGER REFERENCES inbox (seq),
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        blocking INTEGER NOT NULL,
        created_at REAL NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX dead_letters_open ON dead_letters (source, key) WHERE resolved_at IS NULL;
    CREATE TABLE maps (
        namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE TABLE ledger (
        namespace TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    """,
    # 2: an entry's intent (an effect started) lives on its row: no separate read before it.
    """
    ALTER TABLE inbox ADD COLUMN intent_at REAL;
    """,
    # 3: counters that status() reads instead of counting rows (kept exact by delta in the
    # transactions that change what they count, filled here once from a scan); an index to find
    # the oldest pending entry and the finished entries to prune by age; dead letters by inbox
    # row (deleting an inbox row checks them: a foreign key); ledger rows by age, to prune them.
    """
    CREATE TABLE counters (
        scope TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (scope, name)
    ) WITHOUT ROWID;
    """
    + RECOUNT
    + """
    CREATE INDEX inbox_age ON inbox (source, state, occurred_at);
    CREATE INDEX dead_letters_seq ON dead_letters (seq);
    CREATE INDEX ledger_age ON ledger (namespace, updated_at);
    """,
    # 4: pages stored as received, before they are parsed: the source may never serve them
    # again, so not even a crash while parsing may lose one.
    """
    CREATE TABLE received (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        body BLOB NOT NULL,
        received_at REAL NOT NULL
    );
    """,
]


async def migrate(db: aiosqlite.Connection, path: str) -> None:
    """Run the migrations ``db`` has not had yet, each in its own transaction."""
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise StateError(
            f"{path}: state schema version {version} is newer than this program "
            f"understands ({len(MIGRATIONS)}); run the newer version"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, script.split(";")):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version={number}")
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        log.info("state schema migrated to version %d", number)


def is_worker_state(path: str | Path) -> bool:
    """Whether ``path`` is a state file this program wrote (read-only look: nothing changes)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            inbox = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox'"
            ).fetchone()
    except sqlite3.Error:
        return False
    return bool(version) and inbox is not None
