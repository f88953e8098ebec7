"""Where cases live: SQLite behind one writer, one store-wide version sequence, tombstones.

Every operation runs under one lock and inside one transaction, so:

- each committed write takes the next version, and commit order equals version order: the
  change feed (``version > after``) never has a gap that fills in later;
- a DELETE keeps the row as a tombstone (``deleted`` true, fields kept) with a new version, so
  the feed reports deletes; tombstones older than the retention are purged, and the highest
  purged version becomes the *horizon* below which a feed cursor is too old (410);
- an ``Idempotency-Key`` and the case it created are stored in the create's own transaction, so
  a repeat after a crash or an ambiguous answer finds the first result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from case_store.models import SYNCED_FIELDS, CaseFields, CaseRow
from standin_kit.service import WriteHook
from standin_kit.sqlite import open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    version     INTEGER NOT NULL UNIQUE,
    origin      TEXT NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    intempus_id INTEGER,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT,
    deleted_ts  REAL
);
CREATE INDEX IF NOT EXISTS cases_by_intempus_id ON cases (intempus_id);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, case_id INTEGER, body TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
COLUMNS = "id, version, origin, deleted, data, created_at, updated_at, deleted_at"


class Refused(Exception):
    """A request the store refuses: ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def not_found() -> Refused:
    return Refused(404, {"error": "case not found"})


def _row(record: Any) -> CaseRow:
    case_id, version, origin, deleted, data, created_at, updated_at, deleted_at = record
    return CaseRow.model_validate(
        {
            **json.loads(data),
            "id": case_id,
            "version": version,
            "origin": origin,
            "deleted": bool(deleted),
            "created_at": created_at,
            "updated_at": updated_at,
            "deleted_at": deleted_at,
        }
    )


def _data(fields: CaseFields) -> str:
    return fields.model_dump_json()


class CaseStore:
    """Use ``async with CaseStore.open(path, clock=..., retention_s=...) as store``."""

    def __init__(
        self, db: aiosqlite.Connection, clock: Callable[[], float], retention_s: float,
        hooks: list[WriteHook],
    ) -> None:  # fmt: skip
        self._db = db
        self._clock = clock
        self._retention_s = retention_s
        self._hooks = hooks
        self._lock = asyncio.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, path: str, *, clock: Callable[[], float], retention_s: float, hooks: list[WriteHook]
    ) -> AsyncIterator[CaseStore]:
        async with open_db(path, SCHEMA) as db:
            yield cls(db, clock, retention_s, hooks)

    # -- helpers (called under the lock) ---------------------------------------------------

    def _now(self) -> tuple[float, str]:
        now = self._clock()
        return now, datetime.fromtimestamp(now, tz=UTC).isoformat()

    async def _meta(self, key: str) -> int:
        rows = list(await self._db.execute_fetchall("SELECT value FROM meta WHERE key = ?", (key,)))
        return int(rows[0][0]) if rows else 0

    async def _set_meta(self, key: str, value: int) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
        )

    async def _next_version(self) -> int:
        version = await self._meta("version") + 1
        await self._set_meta("version", version)
        return version

    async def _get(self, case_id: int) -> CaseRow | None:
        rows = list(
            await self._db.execute_fetchall(f"SELECT {COLUMNS} FROM cases WHERE id = ?", (case_id,))
        )
        return _row(rows[0]) if rows else None

    async def _check_parent(self, fields: CaseFields, self_id: int | None) -> None:
        current = fields.parent
        seen: set[int] = set()
        first = True
        while current is not None and current not in seen:
            if current == self_id:
                raise Refused(422, _field_error("parent", "a case cannot be its own ancestor"))
            seen.add(current)
            row = await self._get(current)
            if first and (row is None or row.deleted):
                raise Refused(422, _field_error("parent", f"no case {current}"))
            first = False
            current = None if row is None else row.parent

    async def _purge(self) -> None:
        horizon_ts = self._clock() - self._retention_s
        rows = list(
            await self._db.execute_fetchall(
                "SELECT MAX(version) FROM cases WHERE deleted = 1 AND deleted_ts < ?",
                (horizon_ts,),
            )
        )
        purged = rows[0][0] if rows else None
        if purged is None:
            return
        await self._db.execute(
            "DELETE FROM cases WHERE deleted = 1 AND deleted_ts < ?", (horizon_ts,)
        )
        await self._set_meta("purged_through", max(int(purged), await self._meta("purged_through")))

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    def _notify(self, op: str, case_id: int) -> None:
        for hook in list(self._hooks):
            hook(op, case_id)

    # -- operations ------------------------------------------------------------------------

    async def create(
        self, fields: CaseFields, origin: str, idempotency_key: str | None
    ) -> tuple[CaseRow, bool]:
        """The new case and True, or the first result of a repeated key and False."""
        async with self._transaction():
            if idempotency_key is not None:
                rows = list(
                    await self._db.execute_fetchall(
                        "SELECT body FROM idempotency WHERE key = ?", (idempotency_key,)
                    )
                )
                if rows:
                    return CaseRow.model_validate_json(rows[0][0]), False
            await self._check_parent(fields, None)
            await self._purge()
            version = await self._next_version()
            _, stamp = self._now()
            cursor = await self._db.execute(
                "INSERT INTO cases (version, origin, intempus_id, data, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (version, origin, fields.intempus_id, _data(fields), stamp, stamp),
            )
            assert cursor.lastrowid is not None
            row = await self._get(cursor.lastrowid)
            assert row is not None
            if idempotency_key is not None:
                await self._db.execute(
                    "INSERT INTO idempotency (key, case_id, body) VALUES (?, ?, ?)",
                    (idempotency_key, row.id, row.model_dump_json()),
                )
        self._notify("POST", row.id)
        return row, True

    async def update(
        self, case_id: int, changes: dict[str, Any], origin: str, if_match: int | None,
        *, restore: bool = False,
    ) -> CaseRow:  # fmt: skip
        """PATCH (or restore a tombstone): merge ``changes`` into the row, validate the whole."""
        async with self._transaction():
            current = await self._get(case_id)
            if current is None or (current.deleted and not restore):
                raise not_found()
            if restore and not current.deleted:
                raise Refused(409, {"error": "case is not deleted", "current": current.version})
            if if_match is not None and if_match != current.version:
                raise Refused(412, {"error": "version mismatch", "current": current.version})
            merged = {**current.model_dump(include=set(CaseFields.model_fields)), **changes}
            fields = validate_fields(merged)
            await self._check_parent(fields, case_id)
            await self._purge()
            version = await self._next_version()
            _, stamp = self._now()
            await self._db.execute(
                "UPDATE cases SET version = ?, origin = ?, intempus_id = ?, data = ?,"
                " updated_at = ?, deleted = 0, deleted_at = NULL, deleted_ts = NULL WHERE id = ?",
                (version, origin, fields.intempus_id, _data(fields), stamp, case_id),
            )
            row = await self._get(case_id)
            assert row is not None
        self._notify("RESTORE" if restore else "PATCH", case_id)
        return row

    async def delete(self, case_id: int, origin: str, if_match: int | None) -> CaseRow:
        """Turn the row into a tombstone with a new version; its fields are kept."""
        async with self._transaction():
            current = await self._get(case_id)
            if current is None or current.deleted:
                raise not_found()
            if if_match is not None and if_match != current.version:
                raise Refused(412, {"error": "version mismatch", "current": current.version})
            await self._purge()
            version = await self._next_version()
            now, stamp = self._now()
            await self._db.execute(
                "UPDATE cases SET version = ?, origin = ?, deleted = 1, updated_at = ?,"
                " deleted_at = ?, deleted_ts = ? WHERE id = ?",
                (version, origin, stamp, stamp, now, case_id),
            )
            row = await self._get(case_id)
            assert row is not None
        self._notify("DELETE", case_id)
        return row

    async def get(self, case_id: int) -> CaseRow | None:
        async with self._lock:
            return await self._get(case_id)

    async def changes(self, after: int, limit: int) -> tuple[list[CaseRow], int, int]:
        """Rows and tombstones with ``version > after`` in version order, the ``next_after``
        cursor and the high-water mark; 410 if tombstones after ``after`` were purged."""
        async with self._transaction():
            await self._purge()
            horizon = await self._meta("purged_through")
            if 0 < after < horizon:
                raise Refused(
                    410,
                    {"error": "cursor older than the tombstone horizon", "horizon": horizon},
                )
            high_water = await self._meta("version")
            records = await self._db.execute_fetchall(
                f"SELECT {COLUMNS} FROM cases WHERE version > ? ORDER BY version LIMIT ?",
                (after, limit),
            )
            items = [_row(r) for r in records]
        # A short page has read everything committed: the cursor may jump to the high water.
        next_after = high_water if len(items) < limit else items[-1].version
        return items, max(next_after, after), high_water

    async def list(
        self, after_id: int, limit: int, intempus_id: int | None, include_deleted: bool
    ) -> tuple[list[CaseRow], int | None, int]:
        async with self._lock:
            sql = f"SELECT {COLUMNS} FROM cases WHERE id > ?"
            params: list[Any] = [after_id]
            if not include_deleted:
                sql += " AND deleted = 0"
            if intempus_id is not None:
                sql += " AND intempus_id = ?"
                params.append(intempus_id)
            records = list(
                await self._db.execute_fetchall(sql + " ORDER BY id LIMIT ?", (*params, limit + 1))
            )
            high_water = await self._meta("version")
        items = [_row(r) for r in records[:limit]]
        next_after_id = items[-1].id if len(records) > limit else None
        return items, next_after_id, high_water

    async def truth(self) -> dict[str, Any]:
        async with self._lock:
            records = await self._db.execute_fetchall(f"SELECT {COLUMNS} FROM cases ORDER BY id")
            return {
                "high_water": await self._meta("version"),
                "horizon": await self._meta("purged_through"),
                "cases": [_row(r).model_dump(mode="json") for r in records],
            }


def _field_error(field: str, message: str) -> dict[str, Any]:
    return {"error": "validation failed", "errors": [{"field": field, "message": message}]}


def validate_fields(values: dict[str, Any]) -> CaseFields:
    """``CaseFields`` from ``values``, or a 422 ``Refused`` naming each bad field."""
    from pydantic import ValidationError

    try:
        return CaseFields.model_validate(values)
    except ValidationError as error:
        errors = []
        for item in error.errors(include_url=False):
            field = ".".join(str(part) for part in item["loc"])
            message = str(item["msg"]).removeprefix("Value error, ")
            if not field and ": " in message:  # a rule across fields names its field first
                field, message = message.split(": ", 1)
            errors.append({"field": field, "message": message})
        raise Refused(422, {"error": "validation failed", "errors": errors}) from None


__all__ = ["SYNCED_FIELDS", "CaseStore", "Refused", "validate_fields"]
