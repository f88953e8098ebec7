"""Our internal system's API as plain answers, for the CRM sync
(``docs/crm-internal-contract.md``).

Objects are named as everywhere in the sync (``contact``, ``company``); this client maps them to
the routes. Every write carries ``X-Sync-Origin`` (so the feed tells the sync's writes from
users'), creates carry an ``Idempotency-Key`` (a repeat after a lost answer returns the first
row), and patches, deletes and restores may carry ``If-Match`` (a row that moved since it was
read is refused with 412, never overwritten). Refusals the sync acts on are exceptions of their
own: ``VersionMismatch``, ``RecordMissing``, ``NotDeleted``; a 422 is ``FieldsRefused`` naming
every field.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response
from .base import ObjectName
from .internal_models import ChangesAnswer, ListAnswer, RowHead

M = TypeVar("M", bound=BaseModel)

ROUTES: dict[ObjectName, str] = {"contact": "contacts", "company": "companies"}
MAX_PAGES = 1_000_000
"""More pages than this in one read is a looping server, not data."""


@dataclass(frozen=True)
class ChangesPage:
    """One page of the change feed (both objects, each row saying its ``object``). Store
    ``next_after`` only once ``items`` are stored; the feed is read to its end when a page is
    shorter than asked (``last``)."""

    body: bytes
    items: list[dict[str, Any]]
    next_after: int
    high_water: int
    last: bool


class VersionMismatch(PermanentError):
    """412: the row is no longer at the version given in ``If-Match``; re-read and merge."""

    def __init__(
        self, object: ObjectName, record_id: int, expected: int | None, current: int | None
    ) -> None:
        super().__init__(
            f"internal system: {object} {record_id} is at version {current}, not {expected} (412)"
        )
        self.object = object
        self.record_id = record_id
        self.expected = expected
        self.current = current


class RecordMissing(PermanentError):
    """404: no such record, or (for a patch or delete) it is a tombstone."""

    def __init__(self, object: ObjectName, record_id: int, doing: str) -> None:
        super().__init__(f"internal system: {doing}: {object} {record_id} not found (404)")
        self.object = object
        self.record_id = record_id


class NotDeleted(PermanentError):
    """409 on restore: the record is alive (someone restored it, or it was never deleted)."""

    def __init__(self, object: ObjectName, record_id: int, current: int | None) -> None:
        super().__init__(
            f"internal system: {object} {record_id} is not deleted (version {current})"
        )
        self.object = object
        self.record_id = record_id
        self.current = current


class FieldsRefused(PermanentError):
    """422 (or 400): the system refused the data; ``fields`` names each bad field path."""

    def __init__(self, message: str, fields: list[str]) -> None:
        super().__init__(message, blocking=True)
        self.fields = fields


class InternalClient:
    def __init__(self, http: HttpService) -> None:
        self.http = http

    # -- reads -------------------------------------------------------------------------------

    async def changes(self, after: int | None, limit: int = 500) -> ChangesPage:
        """One page of rows and tombstones of both objects written after version ``after``
        (None: from the start). Tombstones are kept for ever, so no cursor is ever refused."""
        start = after or 0
        response = await self.http.request(
            "GET", "changes", params={"after": str(start), "limit": str(limit)}
        )
        if response.status != 200:
            raise _unexpected(response, "GET /changes")
        data, answer = _parse(ChangesAnswer, response, "GET /changes")
        return ChangesPage(
            response.body,
            list(data["items"]),
            answer.next_after,
            answer.high_water,
            len(answer.items) < limit,
        )

    async def high_water(self) -> int:
        """The version sequence now: where a full read (``list_all``) carries the feed on from."""
        response = await self.http.request("GET", "contacts/", params={"limit": "1"})
        if response.status != 200:
            raise _unexpected(response, "GET /contacts/")
        return _parse(ListAnswer, response, "GET /contacts/")[1].high_water

    async def get(
        self, object: ObjectName, record_id: int, *, include_deleted: bool = True
    ) -> dict[str, Any] | None:
        """One record (a tombstone too, unless ``include_deleted`` is false), or None (404)."""
        path = f"{ROUTES[object]}/{record_id}"
        params = {"include_deleted": "true"} if include_deleted else None
        response = await self.http.request("GET", path, params=params)
        if response.status == 404:
            return None
        if response.status != 200:
            raise _unexpected(response, f"GET /{path}")
        return _row(response, f"GET /{path}")

    async def list_all(
        self, object: ObjectName, *, include_deleted: bool = False, limit: int = 500
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every live record of ``object`` (and tombstones with ``include_deleted``), a page at
        a time, by id."""
        path = f"{ROUTES[object]}/"
        after_id: int | None = 0
        seen: set[int] = set()
        for _ in range(MAX_PAGES):
            params = {"after_id": str(after_id), "limit": str(limit)}
            if include_deleted:
                params["include_deleted"] = "true"
            response = await self.http.request("GET", path, params=params)
            if response.status != 200:
                raise _unexpected(response, f"GET /{path}")
            data, answer = _parse(ListAnswer, response, f"GET /{path}")
            yield list(data["items"])
            after_id = answer.next_after_id
            if after_id is None:
                return
            if after_id in seen:
                raise PermanentError(f"internal system: GET /{path} loops back to {after_id}")
            seen.add(after_id)
        raise PermanentError(f"internal system: more than {MAX_PAGES} pages in one list")

    # -- writes ------------------------------------------------------------------------------

    async def create(
        self,
        object: ObjectName,
        fields: Mapping[str, Any],
        *,
        origin: str | None,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Create a record (``fields`` may hold ``links`` and ``born``); a repeat with the same
        key answers with the first row, as it was. ``origin`` None writes as a user."""
        doing = f"POST /{ROUTES[object]}/"
        response = await self.http.request(
            "POST",
            f"{ROUTES[object]}/",
            json_body=dict(fields),
            headers=_headers(origin, **{"Idempotency-Key": idempotency_key}),
        )
        if response.status in (200, 201):
            return _row(response, doing, write=True)
        raise _refused(response, doing)

    async def patch(
        self,
        object: ObjectName,
        record_id: int,
        fields: Mapping[str, Any],
        *,
        origin: str | None,
        if_match: int | None,
    ) -> dict[str, Any]:
        """Change ``fields`` (``links`` merge key by key, a null removing one), if the row is
        still at version ``if_match`` (None: whatever its version)."""
        if not fields:
            raise ValueError(f"refusing an empty PATCH of internal {object} {record_id}")
        path = f"{ROUTES[object]}/{record_id}"
        response = await self.http.request(
            "PATCH",
            path,
            json_body=dict(fields),
            headers=_headers(origin, **_if_match(if_match)),
        )
        return self._written(response, object, record_id, if_match, f"PATCH /{path}")

    async def delete(
        self, object: ObjectName, record_id: int, *, origin: str | None, if_match: int | None
    ) -> dict[str, Any]:
        """Tombstone a record if it is still at ``if_match``; the tombstone. ``RecordMissing``
        when there is no live record to delete (never existed, or already deleted)."""
        path = f"{ROUTES[object]}/{record_id}"
        response = await self.http.request(
            "DELETE", path, headers=_headers(origin, **_if_match(if_match))
        )
        return self._written(response, object, record_id, if_match, f"DELETE /{path}")

    async def restore(
        self,
        object: ObjectName,
        record_id: int,
        fields: Mapping[str, Any] | None = None,
        *,
        origin: str | None,
        if_match: int | None,
    ) -> dict[str, Any]:
        """Un-delete a tombstone still at ``if_match``, applying ``fields`` in the same write."""
        path = f"{ROUTES[object]}/{record_id}/restore"
        response = await self.http.request(
            "POST",
            path,
            json_body=dict(fields or {}),
            headers=_headers(origin, **_if_match(if_match)),
        )
        if response.status == 409:
            current = _body(response).get("current")
            raise NotDeleted(object, record_id, current if isinstance(current, int) else None)
        return self._written(response, object, record_id, if_match, f"POST /{path}")

    def _written(
        self,
        response: Response,
        object: ObjectName,
        record_id: int,
        if_match: int | None,
        doing: str,
    ) -> dict[str, Any]:
        if response.status == 200:
            return _row(response, doing, write=True)
        if response.status == 412:
            current = _body(response).get("current")
            raise VersionMismatch(
                object, record_id, if_match, current if isinstance(current, int) else None
            )
        if response.status == 404:
            raise RecordMissing(object, record_id, doing)
        raise _refused(response, doing)


# -- requests and answers ------------------------------------------------------------------------


def _headers(origin: str | None, **extra: str) -> dict[str, str]:
    return extra if origin is None else {"X-Sync-Origin": origin, **extra}


def _if_match(version: int | None) -> dict[str, str]:
    return {} if version is None else {"If-Match": str(version)}


def _body(response: Response) -> dict[str, Any]:
    """A refusal's JSON object, or {} (an empty or foreign body)."""
    try:
        data = json.loads(response.body) if response.body.strip() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _shape_error(exc: ValidationError, what: str, *, write: bool) -> TransientError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return TransientError(
        f"internal system {what}: answer has the wrong shape ({where}: {first['msg']})",
        maybe_applied=write,
    )


def _parse(model: type[M], response: Response, what: str) -> tuple[dict[str, Any], M]:
    """The answer as sent (its rows stay plain dicts) and as validated."""
    data = response.json()
    try:
        return data, model.model_validate(data)
    except ValidationError as exc:
        raise _shape_error(exc, what, write=False) from None


def _row(response: Response, what: str, *, write: bool = False) -> dict[str, Any]:
    data = response.json()
    try:
        RowHead.model_validate(data)
    except ValidationError as exc:
        raise _shape_error(exc, what, write=write) from None
    return dict(data)


def _refused(response: Response, doing: str) -> PermanentError:
    if response.status in (400, 422):
        body = _body(response)
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = [
                (str(e.get("field")), str(e.get("message"))) for e in errors if isinstance(e, dict)
            ]
            named = "; ".join(f"{field}: {message}" for field, message in parts)
            return FieldsRefused(
                f"internal system refused {doing} ({response.status}): {named}"[:1000],
                [field for field, _ in parts],
            )
        return FieldsRefused(
            f"internal system refused {doing} ({response.status}): {body.get('error', '')}"[:1000],
            [],
        )
    return _unexpected(response, doing)


def _unexpected(response: Response, doing: str) -> PermanentError:
    body = _body(response)
    text = str(body.get("error", "")) or response.body[:200].decode("utf-8", "replace")
    return PermanentError(f"internal system {doing}: unexpected {response.status} {text}".rstrip())


__all__ = [
    "ChangesPage",
    "FieldsRefused",
    "InternalClient",
    "NotDeleted",
    "RecordMissing",
    "VersionMismatch",
]
