"""The worker's own record of what happened, read from its state for ``verify``: the inbox rows
it received (whatever their state), and the few writes ``verify --repair`` makes to it.

Read over a connection of its own, so ``verify`` can run beside a worker (WAL lets a reader go
on while the worker writes) and needs nothing from the store beyond its file.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from pydantic import ValidationError

from ...connectors.bigchat.models import Event

SOURCE = "bigchat"

_CHUNK = 500


@dataclass(frozen=True)
class InboxRow:
    """One event as the worker received it: an inbox row."""

    seq: int
    fingerprint: str
    event: Event
    state: str
    """pending, done or dead."""


async def inbox_rows(
    state_db: str | Path, conversation_ids: Collection[int] | None = None
) -> dict[int, list[InboxRow]]:
    """Every event the inbox holds for ``conversation_ids`` (all: None), in inbox order.
    Rejected items (never valid events) are left out: they were never applied."""
    select = (
        "SELECT seq, key, fingerprint, payload, state FROM inbox"
        " WHERE source = ? AND kind != 'invalid'"
    )
    rows: list[Any] = []
    async with aiosqlite.connect(str(state_db)) as db:
        await db.execute("PRAGMA busy_timeout=10000")
        if conversation_ids is None:
            rows.extend(await db.execute_fetchall(select, (SOURCE,)))
        else:
            keys = sorted({str(cid) for cid in conversation_ids})
            for first in range(0, len(keys), _CHUNK):  # SQLite caps the parameters of one query
                chunk = keys[first : first + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows.extend(
                    await db.execute_fetchall(f"{select} AND key IN ({marks})", (SOURCE, *chunk))
                )
    found: dict[int, list[InboxRow]] = {}
    for seq, key, fingerprint, payload, state in sorted(rows, key=lambda row: int(row[0])):
        if not str(key).isdigit():
            continue
        try:
            event = Event.model_validate(json.loads(payload))
        except (ValueError, ValidationError):
            continue  # stored before a validation rule existed: it cannot be applied either
        found.setdefault(int(key), []).append(
            InboxRow(int(seq), str(fingerprint), event, str(state))
        )
    return found


async def seen_conversations(state_db: str | Path) -> list[int]:
    """Ids of the conversations the worker has received anything of."""
    async with aiosqlite.connect(str(state_db)) as db:
        rows = await db.execute_fetchall(
            "SELECT DISTINCT key FROM inbox WHERE source = ?", (SOURCE,)
        )
    return sorted(int(key) for (key,) in rows if str(key).isdigit())
