"""Where chats, messages and agents live: SQLite behind a single writer, or nowhere (null sink).

Every database operation runs in one task, the *writer*, which drains a queue of pending operations,
runs them one after the other inside a single transaction, commits, and only then resolves each
caller's future. So:

- a request is answered only after its write is committed (it survives a restart);
- concurrent requests are serialised, so none sees another's half-done work or loses a write;
- one commit (one fsync of the WAL) is shared by every request that arrived meanwhile, which is
  what lets the stand-in take thousands of writes a second (group commit).

Reads go through the same queue: they then see exactly what has been answered, never a write
that might still be rolled back.

Invariant that makes per-operation failure safe inside a shared transaction: an operation runs at
most one modifying statement, and a statement that fails changes nothing in SQLite, so an
operation that raises leaves the transaction as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

import aiosqlite

from our_api.errors import (
    AgentNotFound,
    ChatNotFound,
    DuplicateAgent,
    DuplicateExternalId,
    StoreError,
    UnknownAgent,
)
from our_api.models import Agent, AgentCreate, Chat, ChatCreate, ChatUpdate, Message, MessageCreate
from standin_kit.sqlite import open_db

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    seq      INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL UNIQUE,
    name     TEXT NOT NULL UNIQUE,
    email    TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS chats (
    seq         INTEGER PRIMARY KEY,
    chat_id     TEXT NOT NULL UNIQUE,
    external_id TEXT NOT NULL UNIQUE,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    agent_id    TEXT REFERENCES agents (agent_id)
);
CREATE TABLE IF NOT EXISTS messages (
    seq        INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    chat_id    TEXT NOT NULL REFERENCES chats (chat_id),
    agent_id   TEXT REFERENCES agents (agent_id),
    sent_at    TEXT NOT NULL,
    text       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (chat_id, seq);
"""

MAX_BATCH = 512
"""Most operations in one transaction: bounds the latency a large burst adds to its first write."""


class Store(Protocol):
    """What the HTTP handlers need from storage."""

    async def create_chat(self, body: ChatCreate) -> Chat: ...
    async def update_chat(self, chat_id: UUID, body: ChatUpdate) -> None: ...
    async def get_chat(self, chat_id: UUID) -> Chat: ...
    async def list_chats(self, external_id: str | None) -> list[Chat]: ...
    async def add_message(self, chat_id: UUID, body: MessageCreate) -> None: ...
    async def list_messages(self, chat_id: UUID) -> list[Message]: ...
    async def create_agent(self, body: AgentCreate) -> Agent: ...
    async def get_agent(self, agent_id: UUID) -> Agent: ...
    async def list_agents(self, name: str | None, email: str | None) -> list[Agent]: ...


def _dt(value: datetime | None) -> str | None:
    # Stored as naive ISO 8601 text, the offset already dropped by the model.
    return None if value is None else value.isoformat()


def _id(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _chat(row: sqlite3.Row | tuple[Any, ...]) -> Chat:
    return Chat.model_validate(
        {
            "chat_id": row[0],
            "external_id": row[1],
            "started_at": row[2],
            "ended_at": row[3],
            "agent_id": row[4],
        }
    )


def _message(row: sqlite3.Row | tuple[Any, ...]) -> Message:
    return Message.model_validate(
        {
            "message_id": row[0],
            "chat_id": row[1],
            "agent_id": row[2],
            "sent_at": row[3],
            "text": row[4],
        }
    )


def _agent(row: sqlite3.Row | tuple[Any, ...]) -> Agent:
    return Agent.model_validate({"agent_id": row[0], "name": row[1], "email": row[2]})


Operation = Callable[[aiosqlite.Connection], Awaitable[Any]]


@dataclass
class _Pending:
    operation: Operation
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SqliteStore:
    """The real store. Use ``async with SqliteStore.open(path) as store``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: str) -> Any:
        """Open (creating if needed) the database, start the writer; on exit drain and close."""
        # The writer issues BEGIN/COMMIT itself, one pair per batch.
        async with open_db(path, SCHEMA, foreign_keys=True) as db:
            store = cls(db)
            store._writer = asyncio.create_task(store._run_writer(), name="our_api-writer")
            try:
                yield store
            finally:
                await store._stop_writer()

    async def _stop_writer(self) -> None:
        # The sentinel goes behind every operation already queued, so they are all answered.
        self._queue.put_nowait(None)
        if self._writer is not None:
            await self._writer

    async def _submit(self, operation: Operation) -> Any:
        pending = _Pending(operation)
        self._queue.put_nowait(pending)
        return await pending.future

    async def _run_writer(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._run_batch(batch)
            if stop:
                return

    async def _run_batch(self, batch: list[_Pending]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            for pending in batch:
                try:
                    outcomes.append((True, await pending.operation(self._db)))
                except StoreError as refused:
                    outcomes.append((False, refused))
            await self._db.execute("COMMIT")
        except Exception as error:  # the whole batch failed: nothing of it is stored
            log.exception("batch of %d operations failed", len(batch))
            with contextlib.suppress(Exception):
                await self._db.execute("ROLLBACK")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        # Answer only now that the batch is committed.
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the request was cancelled (client went away)
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)

    # --- chats -----------------------------------------------------------------------------

    async def create_chat(self, body: ChatCreate) -> Chat:
        chat = Chat(
            chat_id=uuid.uuid4(),
            external_id=body.external_id,
            started_at=body.started_at,
            ended_at=body.ended_at,
            agent_id=body.agent_id,
        )

        async def operation(db: aiosqlite.Connection) -> Chat:
            agent = _id(chat.agent_id)
            try:
                # The agent check is in the statement itself: one round trip, and an unknown
                # agent is reported before a duplicate external_id.
                cursor = await db.execute(
                    "INSERT INTO chats (chat_id, external_id, started_at, ended_at, agent_id)"
                    " SELECT ?, ?, ?, ?, ?"
                    " WHERE ? IS NULL OR EXISTS (SELECT 1 FROM agents WHERE agent_id = ?)",
                    (
                        str(chat.chat_id),
                        chat.external_id,
                        _dt(chat.started_at),
                        _dt(chat.ended_at),
                        agent,
                        agent,
                        agent,
                    ),
                )
            except sqlite3.IntegrityError as clash:
                raise DuplicateExternalId from clash
            if cursor.rowcount == 0:
                raise UnknownAgent
            return chat

        result: Chat = await self._submit(operation)
        return result

    async def update_chat(self, chat_id: UUID, body: ChatUpdate) -> None:
        changes: dict[str, str | None] = {}
        for name in sorted(body.model_fields_set):
            value = getattr(body, name)
            changes[name] = _id(value) if name == "agent_id" else _dt(value)

        async def operation(db: aiosqlite.Connection) -> None:
            rows = await db.execute_fetchall(
                "SELECT 1 FROM chats WHERE chat_id = ?", (str(chat_id),)
            )
            if not list(rows):
                raise ChatNotFound
            agent = changes.get("agent_id")
            if agent is not None:
                rows = await db.execute_fetchall(
                    "SELECT 1 FROM agents WHERE agent_id = ?", (agent,)
                )
                if not list(rows):
                    raise UnknownAgent
            if changes:
                # Column names come from the model's own field names, never from the client.
                assignments = ", ".join(f"{name} = ?" for name in changes)
                await db.execute(
                    f"UPDATE chats SET {assignments} WHERE chat_id = ?",
                    (*changes.values(), str(chat_id)),
                )

        await self._submit(operation)

    async def get_chat(self, chat_id: UUID) -> Chat:
        async def operation(db: aiosqlite.Connection) -> Chat:
            rows = list(
                await db.execute_fetchall(
                    "SELECT chat_id, external_id, started_at, ended_at, agent_id"
                    " FROM chats WHERE chat_id = ?",
                    (str(chat_id),),
                )
            )
            if not rows:
                raise ChatNotFound
            return _chat(rows[0])

        result: Chat = await self._submit(operation)
        return result

    async def list_chats(self, external_id: str | None) -> list[Chat]:
        async def operation(db: aiosqlite.Connection) -> list[Chat]:
            rows = await db.execute_fetchall(
                "SELECT chat_id, external_id, started_at, ended_at, agent_id FROM chats"
                " WHERE ? IS NULL OR external_id = ? ORDER BY seq",
                (external_id, external_id),
            )
            return [_chat(row) for row in rows]

        result: list[Chat] = await self._submit(operation)
        return result

    # --- messages --------------------------------------------------------------------------

    async def add_message(self, chat_id: UUID, body: MessageCreate) -> None:
        chat = str(chat_id)
        agent = _id(body.agent_id)
        values = (str(uuid.uuid4()), chat, agent, _dt(body.sent_at), body.text)

        async def operation(db: aiosqlite.Connection) -> None:
            # The hot path: one statement that checks the chat and the agent and inserts.
            cursor = await db.execute(
                "INSERT INTO messages (message_id, chat_id, agent_id, sent_at, text)"
                " SELECT ?, ?, ?, ?, ?"
                " WHERE EXISTS (SELECT 1 FROM chats WHERE chat_id = ?)"
                " AND (? IS NULL OR EXISTS (SELECT 1 FROM agents WHERE agent_id = ?))",
                (*values, chat, agent, agent),
            )
            if cursor.rowcount == 1:
                return
            # Nothing inserted: find out which check failed (rare, so a second query is fine).
            rows = await db.execute_fetchall("SELECT 1 FROM chats WHERE chat_id = ?", (chat,))
            if not list(rows):
                raise ChatNotFound
            raise UnknownAgent

        await self._submit(operation)

    async def list_messages(self, chat_id: UUID) -> list[Message]:
        async def operation(db: aiosqlite.Connection) -> list[Message]:
            found = await db.execute_fetchall(
                "SELECT 1 FROM chats WHERE chat_id = ?", (str(chat_id),)
            )
            if not list(found):
                raise ChatNotFound
            rows = await db.execute_fetchall(
                "SELECT message_id, chat_id, agent_id, sent_at, text FROM messages"
                " WHERE chat_id = ? ORDER BY seq",
                (str(chat_id),),
            )
            return [_message(row) for row in rows]

        result: list[Message] = await self._submit(operation)
        return result

    # --- agents ----------------------------------------------------------------------------

    async def create_agent(self, body: AgentCreate) -> Agent:
        agent = Agent(agent_id=uuid.uuid4(), name=body.name, email=body.email)

        async def operation(db: aiosqlite.Connection) -> Agent:
            try:
                await db.execute(
                    "INSERT INTO agents (agent_id, name, email) VALUES (?, ?, ?)",
                    (str(agent.agent_id), agent.name, agent.email),
                )
            except sqlite3.IntegrityError as clash:
                raise DuplicateAgent from clash
            return agent

        result: Agent = await self._submit(operation)
        return result

    async def get_agent(self, agent_id: UUID) -> Agent:
        async def operation(db: aiosqlite.Connection) -> Agent:
            rows = list(
                await db.execute_fetchall(
                    "SELECT agent_id, name, email FROM agents WHERE agent_id = ?",
                    (str(agent_id),),
                )
            )
            if not rows:
                raise AgentNotFound
            return _agent(rows[0])

        result: Agent = await self._submit(operation)
        return result

    async def list_agents(self, name: str | None, email: str | None) -> list[Agent]:
        async def operation(db: aiosqlite.Connection) -> list[Agent]:
            rows = await db.execute_fetchall(
                "SELECT agent_id, name, email FROM agents"
                " WHERE (? IS NULL OR name = ?) AND (? IS NULL OR email = ?) ORDER BY seq",
                (name, name, email, email),
            )
            return [_agent(row) for row in rows]

        result: list[Agent] = await self._submit(operation)
        return result


class NullStore:
    """Stores nothing and answers at once: lets a benchmark measure the client's own cost.

    Answers keep the contract's shapes: creates return a fresh id, lookups find nothing.
    """

    async def create_chat(self, body: ChatCreate) -> Chat:
        return Chat(chat_id=uuid.uuid4(), **body.model_dump())

    async def update_chat(self, chat_id: UUID, body: ChatUpdate) -> None:
        return None

    async def get_chat(self, chat_id: UUID) -> Chat:
        raise ChatNotFound

    async def list_chats(self, external_id: str | None) -> list[Chat]:
        return []

    async def add_message(self, chat_id: UUID, body: MessageCreate) -> None:
        return None

    async def list_messages(self, chat_id: UUID) -> list[Message]:
        return []

    async def create_agent(self, body: AgentCreate) -> Agent:
        return Agent(agent_id=uuid.uuid4(), name=body.name, email=body.email)

    async def get_agent(self, agent_id: UUID) -> Agent:
        raise AgentNotFound

    async def list_agents(self, name: str | None, email: str | None) -> list[Agent]:
        return []
