"""The state a sync's settings name, and the lock a run holds on it: a SQLite file (the default)
with a lock file beside it, or, with ``STATE_URL``, PostgreSQL with a session advisory lock.

asyncpg is imported only when ``STATE_URL`` is set: ``python run.py`` with nothing set never
loads it, and without it installed a PostgreSQL state is one line saying what to install.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Protocol

from .clock import Clock
from .http import mask_url
from .lock import AlreadyRunning, StateLock
from .state import SQLiteStore, StateError, StateStore
from .sync import SyncSettings

if TYPE_CHECKING:
    import asyncpg

MISSING_ASYNCPG = "STATE_URL needs asyncpg, which is not installed: pip install -e '.[distributed]'"


def require_asyncpg() -> None:
    """A ``StateError`` of one line when asyncpg is not installed."""
    if importlib.util.find_spec("asyncpg") is None:
        raise StateError(MISSING_ASYNCPG)


def state_store(settings: SyncSettings, clock: Clock | None = None) -> StateStore:
    """The store the settings name (not yet open)."""
    if settings.state_url is None:
        return SQLiteStore(settings.state_db, clock=clock)
    require_asyncpg()
    from .state.postgres import PostgresStore

    return PostgresStore(settings.state_url, clock=clock)


class RunLock(Protocol):
    """Held for a whole run: a second worker on the same state refuses to start."""

    async def acquire(self) -> None:
        """Take the lock, or raise ``AlreadyRunning`` (``StateError``: cannot tell)."""

    async def release(self) -> None: ...


class FileRunLock:
    """SQLite's: an exclusive lock on a file beside the state file (``lock.StateLock``)."""

    def __init__(self, state_db: object) -> None:
        self._lock = StateLock(str(state_db))

    async def acquire(self) -> None:
        self._lock.acquire()

    async def release(self) -> None:
        self._lock.release()


class AdvisoryRunLock:
    """PostgreSQL's: a session advisory lock, keyed by the sync's name, on a connection of its
    own held for the run. The server drops it when that session ends, however the process dies.
    """

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._conn: asyncpg.Connection | None = None

    @property
    def key(self) -> str:
        """What ``hashtext`` turns into the lock's number (prefixed: other programs on the same
        database may take advisory locks of their own)."""
        return f"integration-worker:{self.name}"

    async def acquire(self) -> None:
        require_asyncpg()
        import asyncpg

        from .state.pg_writer import DB_ERRORS, one_line

        where = mask_url(self.url)
        try:
            conn = await asyncpg.connect(self.url, timeout=10.0)
        except (*DB_ERRORS, ValueError) as exc:
            raise one_line(where, exc) from exc
        try:
            taken = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.key)
        except DB_ERRORS as exc:
            await conn.close()
            raise one_line(where, exc) from exc
        if not taken:
            await conn.close()
            raise AlreadyRunning(
                f"another {self.name} worker holds the state lock in {where}; stop it first, "
                "or give this one its own STATE_URL"
            )
        self._conn = conn

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # Closing the session releases its advisory locks; a session already gone has.
            await close_quietly(conn)


async def close_quietly(conn: asyncpg.Connection) -> None:
    """Close a connection that holds a session's locks; one that cannot close is cut."""
    try:
        await conn.close(timeout=5.0)
    except Exception:
        conn.terminate()


class SharedRun:
    """Several workers (``INBOX_URL``) run on one state at once: no lock for the run; the roles
    within it are locked and fenced (``distributed.roles``)."""

    async def acquire(self) -> None:
        return None

    async def release(self) -> None:
        return None


MISSING_NATS = "INBOX_URL needs nats-py, which is not installed: pip install -e '.[distributed]'"


def require_nats() -> None:
    """A ``StateError`` of one line when nats-py is not installed."""
    if importlib.util.find_spec("nats") is None:
        raise StateError(MISSING_NATS)


def run_lock(name: str, settings: SyncSettings) -> RunLock:
    """The lock for a run of sync ``name`` on the state the settings name."""
    if settings.inbox_url is not None:
        return SharedRun()
    if settings.state_url is not None:
        return AdvisoryRunLock(settings.state_url, name)
    return FileRunLock(settings.state_db)
