"""Where contacts and companies live: SQLite behind one writer, one version sequence for both
tables, tombstones kept for ever.

Every operation runs under one lock and inside one transaction, so:

- each committed write (of either object) takes the next version of the one store-wide sequence,
  and commit order equals version order: the change feed (``version > after``) never has a gap
  that fills in later. The feed is the outbox: a row's version and origin are written in the same
  transaction as the change itself, so no change can commit without its feed entry;
- a DELETE keeps the row as a tombstone (``deleted`` true, fields kept) with a new version, and
  tombstones are never purged, so a feed cursor never expires;
- an ``Idempotency-Key`` and the row it created are stored in the create's own transaction, so a
  repeat after a crash or an ambiguous answer finds the first result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from pydantic import ValidationError

from crm_internal.models import (
    FIELDS,
    OBJECTS,
    READ_ONLY,
    ROUTES,
    ROWS,
    ContactFields,
    ObjectName,
    Row,
    SyncKeys,
    Writable,
    dump_fields,
    field_names,
)
from standin_kit.service import WriteHook
from standin_kit.sqlite import open_db

_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    version     INTEGER NOT NULL UNIQUE,
    origin      TEXT NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    born        TEXT,
    links       TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT
);
"""
SCHEMA = (
    "".join(_TABLE.format(table=ROUTES[o]) for o in OBJECTS)
    + """
CREATE TABLE IF NOT EXISTS idempotency (
    object TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (object, key)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
)
COLUMNS = "id, version, origin, deleted, born, links, data, created_at, updated_at, deleted_at"


class Refused(Exception):
    """A request the store refuses: ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def not_found(object: ObjectName) -> Refused:
    return Refused(404, {"error": f"{object} not found"})


def mismatch(current: int) -> Refused:
    return Refused(412, {"error": "version mismatch", "current": current})


def _row(object: ObjectName, record: Any) -> Row:
    row_id, version, origin, deleted, born, links, data, created_at, updated_at, deleted_at = record
    values = {
        **json.loads(data),
        "id": row_id,
        "object": object,
        "version": version,
        "origin": origin,
        "deleted": bool(deleted),
        "born": born,
        "links": json.loads(links),
        "created_at": created_at,
        "updated_at": updated_at,
        "deleted_at": deleted_at,
    }
    return ROWS[object].model_validate(values)


class CrmStore:
    """Use ``async with CrmStore.open(path, clock=..., hooks=...) as store``."""

    def __init__(
        self, db: aiosqlite.Connection, clock: Callable[[], float], hooks: list[WriteHook]
    ) -> None:
        self._db = db
        self._clock = clock
        self._hooks = hooks
        self._lock = asyncio.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, path: str, *, clock: Callable[[], float], hooks: list[WriteHook]
    ) -> AsyncIterator[CrmStore]:
        async with open_db(path, SCHEMA) as db:
            yield cls(db, clock, hooks)

    # -- helpers (called under the lock) ---------------------------------------------------

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self._clock(), tz=UTC).isoformat()

    async def _high_water(self) -> int:
        rows = list(await self._db.execute_fetchall("SELECT value FROM meta WHERE key = 'version'"))
        return int(rows[0][0]) if rows else 0

    async def _next_version(self) -> int:
        version = await self._high_water() + 1
        await self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)", (version,)
        )
        return version

    async def _get(self, object: ObjectName, row_id: int) -> Row | None:
        rows = list(
            await self._db.execute_fetchall(
                f"SELECT {COLUMNS} FROM {ROUTES[object]} WHERE id = ?", (row_id,)
            )
        )
        return _row(object, rows[0]) if rows else None

    async def _check_company(self, fields: Writable, before: Row | None) -> None:
        # Checked only when the link is set anew: a contact whose company was deleted later
        # stays writable (its other fields can still change) without first unlinking it.
        if not isinstance(fields, ContactFields) or fields.company_id is None:
            return
        company_id = fields.company_id
        if isinstance(before, ContactFields) and before.company_id == company_id:
            return
        company = await self._get("company", company_id)
        if company is None or company.deleted:
            raise Refused(422, field_error("company_id", f"no live company {company_id}"))

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

    def _notify(self, op: str, row_id: int) -> None:
        for hook in list(self._hooks):
            hook(op, row_id)

    # -- operations ------------------------------------------------------------------------

    async def create(
        self, object: ObjectName, body: dict[str, Any], origin: str, idempotency_key: str | None
    ) -> tuple[Row, bool]:
        """The new row and True, or the first result of a repeated key and False."""
        fields, sync = validate_create(object, body)
        table = ROUTES[object]
        async with self._transaction():
            if idempotency_key is not None:
                rows = list(
                    await self._db.execute_fetchall(
                        "SELECT body FROM idempotency WHERE object = ? AND key = ?",
                        (object, idempotency_key),
                    )
                )
                if rows:
                    return _replayed(object, rows[0][0]), False
            await self._check_company(fields, None)
            version = await self._next_version()
            stamp = self._stamp()
            links = {k: v for k, v in sync.links.items() if v is not None}
            cursor = await self._db.execute(
                f"INSERT INTO {table} (version, origin, born, links, data, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (version, origin, sync.born, json.dumps(links), fields.model_dump_json(), stamp,
                 stamp),
            )  # fmt: skip
            assert cursor.lastrowid is not None
            row = await self._get(object, cursor.lastrowid)
            assert row is not None
            if idempotency_key is not None:
                await self._db.execute(
                    "INSERT INTO idempotency (object, key, body) VALUES (?, ?, ?)",
                    (object, idempotency_key, row.model_dump_json()),
                )
        self._notify("POST", row.id)
        return row, True

    async def update(
        self, object: ObjectName, row_id: int, body: dict[str, Any], origin: str,
        if_match: int | None, *, restore: bool = False,
    ) -> Row:  # fmt: skip
        """PATCH (or restore a tombstone): merge ``body`` into the row, validate the whole;
        ``links`` merge key by key."""
        async with self._transaction():
            current = await self._get(object, row_id)
            if current is None or (current.deleted and not restore):
                raise not_found(object)
            if restore and not current.deleted:
                raise Refused(
                    409, {"error": f"{object} is not deleted", "current": current.version}
                )
            if if_match is not None and if_match != current.version:
                raise mismatch(current.version)
            fields, links = validate_patch(current, body)
            await self._check_company(fields, current)
            version = await self._next_version()
            await self._db.execute(
                f"UPDATE {ROUTES[object]} SET version = ?, origin = ?, links = ?, data = ?,"
                " updated_at = ?, deleted = 0, deleted_at = NULL WHERE id = ?",
                (version, origin, json.dumps(links), fields.model_dump_json(), self._stamp(),
                 row_id),
            )  # fmt: skip
            row = await self._get(object, row_id)
            assert row is not None
        self._notify("RESTORE" if restore else "PATCH", row_id)
        return row

    async def delete(
        self, object: ObjectName, row_id: int, origin: str, if_match: int | None
    ) -> Row:
        """Turn the row into a tombstone with a new version; its fields and links are kept."""
        async with self._transaction():
            current = await self._get(object, row_id)
            if current is None or current.deleted:
                raise not_found(object)
            if if_match is not None and if_match != current.version:
                raise mismatch(current.version)
            version = await self._next_version()
            stamp = self._stamp()
            await self._db.execute(
                f"UPDATE {ROUTES[object]} SET version = ?, origin = ?, deleted = 1,"
                " updated_at = ?, deleted_at = ? WHERE id = ?",
                (version, origin, stamp, stamp, row_id),
            )
            row = await self._get(object, row_id)
            assert row is not None
        self._notify("DELETE", row_id)
        return row

    async def get(self, object: ObjectName, row_id: int) -> Row | None:
        async with self._lock:
            return await self._get(object, row_id)

    async def changes(self, after: int, limit: int) -> tuple[list[Row], int, int]:
        """Rows and tombstones of both objects with ``version > after`` in version order, the
        ``next_after`` cursor and the high-water mark."""
        union = " UNION ALL ".join(
            f"SELECT '{o}', {COLUMNS} FROM {ROUTES[o]} WHERE version > :after" for o in OBJECTS
        )
        async with self._lock:
            # Read under the lock: no write is half done, so the page and the high water agree.
            high_water = await self._high_water()
            records = await self._db.execute_fetchall(
                f"{union} ORDER BY version LIMIT :limit", {"after": after, "limit": limit}
            )
            items = [_row(r[0], r[1:]) for r in records]
        # A short page has read everything committed: the cursor may jump to the high water.
        next_after = high_water if len(items) < limit else items[-1].version
        return items, max(next_after, after), high_water

    async def list(
        self, object: ObjectName, after_id: int, limit: int, include_deleted: bool
    ) -> tuple[list[Row], int | None, int]:
        async with self._lock:
            sql = f"SELECT {COLUMNS} FROM {ROUTES[object]} WHERE id > ?"
            if not include_deleted:
                sql += " AND deleted = 0"
            records = list(
                await self._db.execute_fetchall(sql + " ORDER BY id LIMIT ?", (after_id, limit + 1))
            )
            high_water = await self._high_water()
        items = [_row(object, r) for r in records[:limit]]
        next_after_id = items[-1].id if len(records) > limit else None
        return items, next_after_id, high_water

    async def records(self) -> dict[str, Any]:
        """The truth: every row of both objects, tombstones included, and the high water."""
        async with self._lock:
            truth: dict[str, Any] = {"high_water": await self._high_water()}
            for o in OBJECTS:
                rows = await self._db.execute_fetchall(
                    f"SELECT {COLUMNS} FROM {ROUTES[o]} ORDER BY id"
                )
                truth[ROUTES[o]] = [_row(o, r).model_dump(mode="json") for r in rows]
            return truth


def _replayed(object: ObjectName, body: str) -> Row:
    return ROWS[object].model_validate_json(body)


def field_error(field: str, message: str) -> dict[str, Any]:
    return {"error": "validation failed", "errors": [{"field": field, "message": message}]}


def _errors(error: ValidationError, prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Each of pydantic's complaints as ``{field, message}``, the field as a dotted path."""
    errors = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in (*prefix, *item["loc"]))
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"] and ": " in message:  # a rule across fields names its field first
            field, message = message.split(": ", 1)
        errors.append({"field": field, "message": message})
    return errors


def _validate(
    object: ObjectName, fields: dict[str, Any], sync: dict[str, Any]
) -> tuple[Writable, SyncKeys]:
    """Both parts validated, every complaint of both in one 422."""
    errors: list[dict[str, str]] = []
    try:
        valid_fields: Writable | None = FIELDS[object].model_validate(fields)
    except ValidationError as error:
        valid_fields = None
        errors += _errors(error)
    try:
        valid_sync: SyncKeys | None = SyncKeys.model_validate(sync)
    except ValidationError as error:
        valid_sync = None
        errors += _errors(error)
    if errors:
        raise Refused(422, {"error": "validation failed", "errors": errors})
    assert valid_fields is not None and valid_sync is not None
    return valid_fields, valid_sync


def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The body without read-only keys, as (fields, sync keys)."""
    sync: dict[str, Any] = {k: body[k] for k in ("links", "born") if k in body}
    fields = {k: v for k, v in body.items() if k not in READ_ONLY and k not in sync}
    return fields, sync


def validate_create(object: ObjectName, body: dict[str, Any]) -> tuple[Writable, SyncKeys]:
    """A create's fields and sync keys, or a 422 ``Refused`` naming each bad field."""
    fields, sync = _split(body)
    return _validate(object, fields, sync)


def validate_patch(current: Row, body: dict[str, Any]) -> tuple[Writable, dict[str, str]]:
    """The whole row after merging ``body`` (fields replaced, links merged key by key), or a
    422 ``Refused``. ``born`` may be sent back unchanged, never changed."""
    changes, sync = _split(body)
    if "born" in sync and sync["born"] != current.born:
        raise Refused(422, field_error("born", "set when the record is created, never changed"))
    sync.pop("born", None)
    merged = {**dump_fields(current), **changes}
    fields, valid = _validate(current.object, merged, sync)
    links = dict(current.links)
    for connection, provider_id in valid.links.items():
        if provider_id is None:
            links.pop(connection, None)
        else:
            links[connection] = provider_id
    return fields, links


__all__ = ["CrmStore", "Refused", "field_names", "not_found"]
