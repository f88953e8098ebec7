"""Both state stores for the tests that hold for either: SQLite in a temporary folder, and
PostgreSQL in a fresh schema of its own (random name, dropped after).

PostgreSQL is the one at ``TEST_POSTGRES_URL`` (default: the local server, trust auth). Where it
cannot be reached, its tests skip saying why; with ``CI_REQUIRE_SERVICES=1`` (CI sets it) they
fail instead, so CI never passes by skipping them.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from integration.core.clock import Clock
from integration.core.state import SQLiteStore, StateStore
from tests.helpers.services import skip_or_fail, unreachable

BACKENDS = ("sqlite", "postgres")

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@functools.cache
def _postgres_unavailable() -> str | None:
    """Why the tests cannot use PostgreSQL, or None when they can."""
    if importlib.util.find_spec("asyncpg") is None:
        return "asyncpg is not installed (pip install -e .[distributed])"
    parts = urlsplit(POSTGRES_URL)
    return unreachable("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)


def postgres_url() -> str:
    """The server's URL; skips the test where there is none (fails it where CI requires one)."""
    skip_or_fail(_postgres_unavailable())
    return POSTGRES_URL


def fresh_schema() -> str:
    return f"test_{uuid.uuid4().hex[:16]}"


async def drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A schema name no other test uses, dropped (with all in it) at the end."""
    postgres_url()
    schema = fresh_schema()
    try:
        yield schema
    finally:
        await drop_schema(schema)


def new_store(backend: str, tmp_path: Path, schema: str, clock: Clock | None = None) -> StateStore:
    if backend == "sqlite":
        return SQLiteStore(tmp_path / "state.db", clock=clock)
    from integration.core.state.postgres import PostgresStore

    return PostgresStore(postgres_url(), clock=clock, schema=schema)


@asynccontextmanager
async def opened_store(
    backend: str, tmp_path: Path, clock: Clock | None = None
) -> AsyncIterator[StateStore]:
    """An open, empty store of ``backend``; closed (and its schema dropped) at the end."""
    if backend == "postgres":
        postgres_url()
    schema = fresh_schema()
    store = new_store(backend, tmp_path, schema, clock)
    try:
        await store.open()
        try:
            yield store
        finally:
            await store.close()
    finally:
        if backend == "postgres":
            await drop_schema(schema)


def same_state(store: StateStore, clock: Clock | None = None) -> StateStore:
    """A second store on ``store``'s state (as a restarted process would open it)."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path, clock=clock)
    from integration.core.state.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url, clock=clock, schema=store.schema)


async def rows_elsewhere(store: StateStore, sql: str) -> list[tuple[Any, ...]]:
    """``sql`` (no parameters) run on a connection of its own, not the store's."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as db:
            return [tuple(row) for row in db.execute(sql)]
    import asyncpg

    from integration.core.state.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(store.url, server_settings={"search_path": store.schema})
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """The URL of a database no other test uses, dropped at the end: for what takes its state
    from ``STATE_URL`` alone (the store's schema and the run lock's key are then fixed)."""
    import asyncpg

    postgres_url()
    name = fresh_schema()
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(POSTGRES_URL)
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def cut_advisory_lock(url: str, key: str) -> None:
    """End the sessions holding the advisory lock ``hashtext(key)`` in ``url``'s database (a
    network blip, a proxy closing an idle connection). That database only: other tests hold the
    same key in theirs."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND objid = hashtext($1)::oid AND pid != pg_backend_pid() AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
            key,
        )
    finally:
        await conn.close()
