"""The local case store's API as plain answers (``docs/case-store-contract.md``).

Every write carries ``X-Sync-Origin`` (so the feed tells our writes from users'), creates carry an
``Idempotency-Key`` (a repeat after a lost answer returns the first row), and updates, deletes and
restores carry ``If-Match`` (a row that moved since it was read is refused with 412, never
overwritten). Refusals the sync acts on are exceptions of their own: ``VersionMismatch``,
``FeedExpired``, ``CaseMissing``, ``NotDeleted``; a 422 is ``FieldsRefused`` naming every field.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response
from .models import ChangesAnswer, ListAnswer

M = TypeVar("M", bound=BaseModel)

MAX_PAGES = 1_000_000
"""More pages than this in one read is a looping server, not data."""


@dataclass(frozen=True)
class ChangesPage:
    """One page of the change feed. Store ``next_after`` only once ``items`` are stored; the
    feed is read to its end when a page is shorter than asked (``last``)."""

    body: bytes
    items: list[dict[str, Any]]
    next_after: int
    high_water: int
    last: bool


class FeedExpired(PermanentError):
    """410: tombstones after the cursor were purged, so a delete may have been missed. The
    reader must reconcile from a full list and carry on from the list's ``high_water``."""

    def __init__(self, after: int, horizon: int | None) -> None:
        super().__init__(
            f"case store: change feed cursor {after} is older than the tombstone horizon "
            f"({horizon}); a full reconcile is needed"
        )
        self.after = after
        self.horizon = horizon


class VersionMismatch(PermanentError):
    """412: the row is no longer at the version given in ``If-Match``; re-read and merge."""

    def __init__(self, case_id: int, expected: int, current: int | None) -> None:
        super().__init__(
            f"case store: case {case_id} is at version {current}, not {expected} (412)"
        )
        self.case_id = case_id
        self.expected = expected
        self.current = current


class CaseMissing(PermanentError):
    """404: no such case, or (for a patch) it is a tombstone."""

    def __init__(self, case_id: int, doing: str) -> None:
        super().__init__(f"case store: {doing}: case {case_id} not found (404)")
        self.case_id = case_id


class NotDeleted(PermanentError):
    """409 on restore: the case is alive (someone restored it, or it was never deleted)."""

    def __init__(self, case_id: int, current: int | None) -> None:
        super().__init__(f"case store: case {case_id} is not deleted (version {current})")
        self.case_id = case_id
        self.current = current


class FieldsRefused(PermanentError):
    """422 (or 400): the store refused the data; ``fields`` names each bad field."""

    def __init__(self, message: str, fields: list[str]) -> None:
        super().__init__(message, blocking=True)
        self.fields = fields


class CaseStoreClient:
    def __init__(self, http: HttpService, *, origin: str = "intempus-sync") -> None:
        self.http = http
        self.origin = origin

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"X-Sync-Origin": self.origin, **extra}

    # -- reads -------------------------------------------------------------------------------

    async def changes(self, after: int | None, limit: int = 500) -> ChangesPage:
        """One page of rows and tombstones written after version ``after`` (None: from the
        start, never refused)."""
        start = after or 0
        response = await self.http.request(
            "GET", "cases/changes", params={"after": str(start), "limit": str(limit)}
        )
        if response.status == 410:
            horizon = _body(response).get("horizon")
            raise FeedExpired(start, horizon if isinstance(horizon, int) else None)
        if response.status != 200:
            raise _unexpected(response, "GET /cases/changes")
        answer = _parse(ChangesAnswer, response, "GET /cases/changes")
        return ChangesPage(
            response.body,
            answer.items,
            answer.next_after,
            answer.high_water,
            len(answer.items) < limit,
        )

    async def all_cases(
        self, *, include_deleted: bool = False, limit: int = 500
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every live case (and tombstones with ``include_deleted``), a page at a time, by id."""
        async for answer in self._list(include_deleted=include_deleted, limit=limit):
            yield answer.items

    async def _list(
        self, *, include_deleted: bool, limit: int, intempus_id: int | None = None
    ) -> AsyncIterator[ListAnswer]:
        after_id: int | None = 0
        seen: set[int] = set()
        for _ in range(MAX_PAGES):
            params = {"after_id": str(after_id), "limit": str(limit)}
            if include_deleted:
                params["include_deleted"] = "true"
            if intempus_id is not None:
                params["intempus_id"] = str(intempus_id)
            response = await self.http.request("GET", "cases/", params=params)
            if response.status != 200:
                raise _unexpected(response, "GET /cases/")
            answer = _parse(ListAnswer, response, "GET /cases/")
            yield answer
            after_id = answer.next_after_id
            if after_id is None:
                return
            if after_id in seen:
                raise PermanentError(f"case store: GET /cases/ loops back to after_id={after_id}")
            seen.add(after_id)
        raise PermanentError(f"case store: more than {MAX_PAGES} pages in one list")

    async def high_water(self) -> int:
        """The version sequence now: where a reconcile after a 410 carries the feed on from."""
        response = await self.http.request("GET", "cases/", params={"limit": "1"})
        if response.status != 200:
            raise _unexpected(response, "GET /cases/")
        return _parse(ListAnswer, response, "GET /cases/").high_water

    async def get(self, case_id: int, *, include_deleted: bool = False) -> dict[str, Any] | None:
        """One case, or None (404; a tombstone too unless ``include_deleted``)."""
        params = {"include_deleted": "true"} if include_deleted else None
        response = await self.http.request("GET", f"cases/{case_id}", params=params)
        if response.status == 404:
            return None
        if response.status != 200:
            raise _unexpected(response, f"GET /cases/{case_id}")
        return _row(response, f"GET /cases/{case_id}")

    async def find_by_intempus_id(
        self, intempus_id: int, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """The rows linked to an Intempus case (normally none or one)."""
        rows: list[dict[str, Any]] = []
        async for answer in self._list(
            include_deleted=include_deleted, limit=500, intempus_id=intempus_id
        ):
            rows.extend(answer.items)
        return rows

    # -- writes ------------------------------------------------------------------------------

    async def create(self, fields: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Create a case; a repeat with the same key answers with the first row, as it was."""
        response = await self.http.request(
            "POST",
            "cases/",
            json_body=dict(fields),
            headers=self._headers(**{"Idempotency-Key": idempotency_key}),
        )
        if response.status in (200, 201):
            return _row(response, "POST /cases/", write=True)
        raise _refused(response, "POST /cases/")

    async def patch(self, case_id: int, fields: Mapping[str, Any], if_match: int) -> dict[str, Any]:
        """Change ``fields`` if the row is still at version ``if_match``."""
        if not fields:
            raise ValueError(f"refusing an empty PATCH of local case {case_id}")
        doing = f"PATCH /cases/{case_id}"
        response = await self.http.request(
            "PATCH",
            f"cases/{case_id}",
            json_body=dict(fields),
            headers=self._headers(**{"If-Match": str(if_match)}),
        )
        if response.status == 200:
            return _row(response, doing, write=True)
        _raise_conditional(response, case_id, if_match, doing)
        raise _refused(response, doing)

    async def delete(self, case_id: int, if_match: int) -> dict[str, Any] | None:
        """Tombstone a case if it is still at ``if_match``; the tombstone, or None when there is
        no live case to delete (404: never existed, or already deleted)."""
        doing = f"DELETE /cases/{case_id}"
        response = await self.http.request(
            "DELETE", f"cases/{case_id}", headers=self._headers(**{"If-Match": str(if_match)})
        )
        if response.status == 200:
            return _row(response, doing, write=True)
        if response.status == 404:
            return None
        _raise_conditional(response, case_id, if_match, doing)
        raise _unexpected(response, doing)

    async def restore(
        self, case_id: int, if_match: int, fields: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Un-delete a tombstone still at ``if_match``, applying ``fields`` in the same write
        (the sync uses it when Intempus wins a delete/update clash)."""
        doing = f"POST /cases/{case_id}/restore"
        response = await self.http.request(
            "POST",
            f"cases/{case_id}/restore",
            json_body=dict(fields or {}),
            headers=self._headers(**{"If-Match": str(if_match)}),
        )
        if response.status == 200:
            return _row(response, doing, write=True)
        if response.status == 409:
            current = _body(response).get("current")
            raise NotDeleted(case_id, current if isinstance(current, int) else None)
        _raise_conditional(response, case_id, if_match, doing)
        raise _refused(response, doing)


# -- answers -----------------------------------------------------------------------------------


def _body(response: Response) -> dict[str, Any]:
    """A refusal's JSON object, or {} (an empty or foreign body)."""
    try:
        data = json.loads(response.body) if response.body.strip() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _parse(model: type[M], response: Response, what: str) -> M:
    try:
        return model.model_validate(response.json())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise TransientError(
            f"case store {what}: answer has the wrong shape ({where}: {first['msg']})",
            maybe_applied=False,
        ) from None


def _row(response: Response, what: str, *, write: bool = False) -> dict[str, Any]:
    data = response.json()
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("id"), int)
        or not isinstance(data.get("version"), int)
    ):
        raise TransientError(f"case store {what}: answer is not a case row", maybe_applied=write)
    return data


def _raise_conditional(response: Response, case_id: int, if_match: int, doing: str) -> None:
    if response.status == 412:
        current = _body(response).get("current")
        raise VersionMismatch(case_id, if_match, current if isinstance(current, int) else None)
    if response.status == 404:
        raise CaseMissing(case_id, doing)


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
                f"case store refused {doing} ({response.status}): {named}"[:400],
                [field for field, _ in parts],
            )
        return FieldsRefused(
            f"case store refused {doing} ({response.status}): {body.get('error', '')}"[:400], []
        )
    return _unexpected(response, doing)


def _unexpected(response: Response, doing: str) -> PermanentError:
    body = _body(response)
    text = str(body.get("error", "")) or response.body[:200].decode("utf-8", "replace")
    return PermanentError(f"case store {doing}: unexpected {response.status} {text}".rstrip())
