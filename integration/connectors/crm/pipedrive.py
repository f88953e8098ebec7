"""Pipedrive (API v2) as a CRM ``Connector``: persons and organizations, one write per call.

Wire facts this connector is built on (``docs/crm-providers.md``, Pipedrive section):

- every call costs tokens from an account-wide daily budget (reset at midnight UTC) and counts
  against a burst limit per rolling window; either one spent answers 429 with ``Retry-After``,
  and persistent abuse answers 403 to everything for a while;
- there is no external-id upsert: our id lives in a custom field and is found with search;
- a listing sorted by ``update_time`` pages with an *offset* cursor into the live result, which
  drifts when records change between pages; sorted by id, the cursor is the last id (stable);
- deleted records are never listed; a single read still shows them (``is_deleted``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response
from .base import (
    Budget,
    Dimension,
    ObjectName,
    RateLimited,
    RemoteRecord,
    Write,
    WriteResult,
)

OUR_ID_KEY = hashlib.sha1(b"our_id").hexdigest()
"""The custom field holding our id: ``sha1("our_id")``, as ``crm_providers.pipedrive.OUR_ID_KEY``
(copied, not imported: the worker must not depend on the stand-ins; a test checks they agree)."""

OBJECTS: Mapping[ObjectName, str] = {"contact": "persons", "company": "organizations"}

COSTS: Mapping[str, int] = {
    "list": 10,
    "get": 1,
    "create": 10,
    "update": 10,
    "delete": 6,
    "search": 20,
}
"""Tokens per call kind, as Pipedrive charges them (the stand-in's table)."""

MAX_PAGE = 500
MAX_PAGES = 1_000_000
"""More pages than this in one listing is a looping server, not data."""

ABUSE_WAIT_S = 600.0
"""How long a persistent-abuse 403 blocks when the answer does not say (Pipedrive's 10 minutes)."""

DAY_S = 86_400.0


# -- answers -----------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Entry(_Model):
    """One of a person's ``emails`` / ``phones``."""

    value: str
    primary: bool = False


class _Record(_Model):
    id: int
    name: str | None = None
    update_time: AwareDatetime
    is_deleted: bool = False
    owner_id: int | None = None
    custom_fields: dict[str, str | None] = {}


class _Person(_Record):
    first_name: str | None = None
    last_name: str | None = None
    emails: list[_Entry] = []
    phones: list[_Entry] = []
    org_id: int | None = None


class _Organization(_Record):
    address: str | None = None


class _Cursor(_Model):
    next_cursor: str | None = None


class _Listing(_Model):
    data: list[dict[str, Any]]
    additional_data: _Cursor


class _One(_Model):
    data: dict[str, Any]


class _Hit(_Model):
    id: int
    custom_fields: list[str] = []


class _SearchItem(_Model):
    item: _Hit


class _SearchData(_Model):
    items: list[_SearchItem]


class _Search(_Model):
    data: _SearchData


class _Failure(_Model):
    error: str


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], value: Any, doing: str) -> M:
    """``value`` as ``model``, or a ``PermanentError`` naming the first field that is wrong."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(the answer)"
        raise PermanentError(
            f"Pipedrive {doing}: malformed answer: {where}: {first['msg']}"
        ) from None


def _error_text(response: Response) -> str:
    """The provider's ``error`` in one line, or the start of the body."""
    try:
        text = _Failure.model_validate(response.json()).error
    except (ValidationError, TransientError):
        text = response.body[:200].decode("utf-8", "replace")
    return " ".join(text.split())


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _primary(entries: list[_Entry]) -> str | None:
    for entry in entries:
        if entry.primary:
            return entry.value
    return entries[0].value if entries else None


def _record(object: ObjectName, data: Mapping[str, Any], doing: str) -> RemoteRecord:
    """A person or organization as a ``RemoteRecord`` with flattened fields."""
    fields: dict[str, Any]
    parsed: _Record
    if object == "contact":
        person = _parse(_Person, data, doing)
        fields = {
            "name": person.name,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "email": _primary(person.emails),
            "phone": _primary(person.phones),
            "org_id": person.org_id,
            "owner_id": person.owner_id,
        }
        parsed = person
    else:
        org = _parse(_Organization, data, doing)
        fields = {"name": org.name, "address": org.address, "owner_id": org.owner_id}
        parsed = org
    for key, value in parsed.custom_fields.items():
        fields[f"custom_fields.{key}"] = value
    return RemoteRecord(
        object=object,
        id=str(parsed.id),
        fields=fields,
        updated_at=parsed.update_time.timestamp(),
        deleted=parsed.is_deleted,
        our_id=parsed.custom_fields.get(OUR_ID_KEY),
    )


class _Unwritable(ValueError):
    """A write whose fields cannot be sent as v2 demands (refused per record, not sent)."""


_INT_FIELDS = ("org_id", "owner_id")


def _unflatten(fields: Mapping[str, Any], our_id: str | None) -> dict[str, Any]:
    """Flattened names back to Pipedrive's body. v2 is strict, so integer ids are sent as real
    integers (a digit string is converted; anything else is refused here)."""
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in fields.items():
        if name.startswith("custom_fields."):
            custom[name.removeprefix("custom_fields.")] = value
        elif name in ("email", "phone"):
            # The flattened field is the primary entry: writing it makes it the only one.
            body[f"{name}s"] = (
                [] if value in (None, "") else [{"value": value, "primary": True, "label": "work"}]
            )
        elif name in _INT_FIELDS:
            body[name] = _as_int(name, value)
        else:
            body[name] = value
    if our_id is not None:
        custom[OUR_ID_KEY] = our_id
    if custom:
        body["custom_fields"] = custom
    return body


def _as_int(name: str, value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _Unwritable(f"{name} must be an integer, got {value!r}")


# -- the connector -----------------------------------------------------------------------------


class PipedriveConnector:
    kind = "pipedrive"
    max_batch = 1

    def __init__(
        self,
        http: HttpService,
        budget: Budget,
        *,
        daily_tokens: int = 30_000,
        burst: int = 20,
        burst_window: float = 2.0,
        page_size: int = MAX_PAGE,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE}")
        self.http = http
        self.budget = budget
        self.daily_tokens = daily_tokens
        self.burst = burst
        self.burst_window = burst_window
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"PipedriveConnector({self.http.display_url!r})"

    def dimensions(self) -> Sequence[Dimension]:
        return (
            Dimension("tokens", self.daily_tokens, DAY_S, rolling=False, costs=dict(COSTS)),
            Dimension("burst", self.burst, self.burst_window, rolling=True),
        )

    def is_ours(self, record: RemoteRecord) -> bool | None:
        # API reads carry no change source (only webhooks do).
        return None

    # -- requests ------------------------------------------------------------------------------

    async def _request(
        self,
        call: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Response:
        await self.budget.take(call)
        try:
            response = await self.http.request(method, path, params=params, json_body=json_body)
        except TransientError as exc:
            if exc.status == 429:
                raise self._limited(exc, method, path) from None
            raise
        if response.status == 403:
            text = _error_text(response)
            if "abuse" in text.lower() or "rate limit" in text.lower():
                wait = _retry_after(response) or ABUSE_WAIT_S
                # The block stops every request, and every request spends the burst: holding
                # that dimension holds everything until the block ends.
                self.budget.refused("burst", wait)
                raise RateLimited(
                    f"Pipedrive {method} {path}: blocked for rate-limit abuse (403): {text}",
                    dimension="abuse",
                    wait=wait,
                )
            raise PermanentError(f"Pipedrive {method} {path}: refused (403): {text}")
        if response.status == 401:
            raise PermanentError(
                f"Pipedrive {method} {path}: the API token was refused (401): check its settings"
            )
        return response

    def _limited(self, exc: TransientError, method: str, path: str) -> RateLimited:
        """A 429 as ``RateLimited``, after telling the budget which dimension was spent.

        ``HttpService`` raises on a 429 without the body that names the budget ("Daily token
        budget exceeded" / "Request over limit"), so the dimension is told by the wait: the
        burst frees within its window, the tokens only at midnight. (Just before midnight the
        two look alike, and either answer waits about as long.)
        """
        wait = exc.retry_after
        if wait is None:
            wait = self.burst_window
        dimension = "tokens" if wait > math.ceil(self.burst_window) else "burst"
        self.budget.refused(dimension, wait)
        return RateLimited(
            f"Pipedrive {method} {path}: {dimension} spent (429), retry in {wait:g} s",
            dimension=dimension,
            wait=wait,
        )

    # -- reads ---------------------------------------------------------------------------------

    async def _list(
        self, object: ObjectName, params: Mapping[str, str]
    ) -> tuple[list[RemoteRecord], str | None]:
        path = f"api/v2/{OBJECTS[object]}"
        doing = f"GET /{path}"
        response = await self._request("list", "GET", path, params=params)
        if response.status != 200:
            raise PermanentError(f"Pipedrive {doing}: {response.status} {_error_text(response)}")
        listing = _parse(_Listing, response.json(), doing)
        records = [_record(object, row, doing) for row in listing.data]
        return records, listing.additional_data.next_cursor

    async def changed_since(
        self, object: ObjectName, since: float | None
    ) -> AsyncIterator[list[RemoteRecord]]:
        if since is None:
            async for page in self._by_id(object, {}):
                yield page
            return
        # Pipedrive's times are whole seconds and ``updated_since`` is inclusive.
        mark = float(math.floor(since))
        for _ in range(MAX_PAGES):
            params = {
                "updated_since": _rfc3339(mark),
                "sort_by": "update_time",
                "sort_direction": "asc",
                "limit": str(self.page_size),
            }
            records, cursor = await self._list(object, params)
            if records:
                yield records
            if cursor is None:
                return  # this page held everything modified since the mark
            if not records:
                raise PermanentError(
                    f"Pipedrive GET /api/v2/{OBJECTS[object]}: an empty page with a next cursor"
                )
            # The cursor is an offset into the live result: a record modified since the last
            # page moved to the end and the one that slid into its place would be skipped.
            # Read again from the last time seen instead (the records of that second come again).
            last = max(r.updated_at for r in records)
            if last > mark:
                mark = last
                continue
            # A full page of one second: the mark cannot move on. Read that second by id (a
            # stable cursor), then go on from the next second.
            window = {"updated_since": _rfc3339(mark), "updated_until": _rfc3339(mark + 1)}
            async for page in self._by_id(object, window):
                yield page
            mark += 1
        raise PermanentError(f"Pipedrive: more than {MAX_PAGES} pages in one listing")

    async def _by_id(
        self, object: ObjectName, extra: Mapping[str, str]
    ) -> AsyncIterator[list[RemoteRecord]]:
        """Every record matching ``extra``, by id: the cursor is the last id, stable whatever
        changes meanwhile."""
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params = {**extra, "sort_by": "id", "limit": str(self.page_size)}
            if cursor is not None:
                if cursor in seen:
                    raise PermanentError(f"Pipedrive: the cursor loops back ({cursor[:40]})")
                seen.add(cursor)
                params["cursor"] = cursor
            records, cursor = await self._list(object, params)
            if records:
                yield records
            if cursor is None:
                return
        raise PermanentError(f"Pipedrive: more than {MAX_PAGES} pages in one listing")

    async def get(self, object: ObjectName, ids: Sequence[str]) -> list[RemoteRecord | None]:
        out: list[RemoteRecord | None] = []
        for record_id in ids:
            if not (record_id.isascii() and record_id.isdigit()):
                out.append(None)  # Pipedrive ids are integers: no such record
                continue
            path = f"api/v2/{OBJECTS[object]}/{record_id}"
            response = await self._request("get", "GET", path)
            if response.status == 404:
                out.append(None)
                continue
            if response.status != 200:
                raise PermanentError(
                    f"Pipedrive GET /{path}: {response.status} {_error_text(response)}"
                )
            one = _parse(_One, response.json(), f"GET /{path}")
            out.append(_record(object, one.data, f"GET /{path}"))
        return out

    # -- writes --------------------------------------------------------------------------------

    async def upsert(self, object: ObjectName, writes: Sequence[Write]) -> list[WriteResult]:
        if len(writes) > self.max_batch:
            raise ValueError(f"Pipedrive takes {self.max_batch} write per call, got {len(writes)}")
        return [await self._upsert_one(object, write) for write in writes]

    async def _upsert_one(self, object: ObjectName, write: Write) -> WriteResult:
        try:
            # An update by id leaves our id as it is: a record born at Pipedrive never gets one,
            # so the key it is known by (its Pipedrive id) never changes.
            body = _unflatten(write.fields, write.our_id if write.provider_id is None else None)
        except _Unwritable as exc:
            return WriteResult(ok=False, error=str(exc))
        try:
            target = write.provider_id
            if target is None and not write.surely_new:
                target = await self._find(object, write.our_id)
            if target is None:
                return await self._write(object, "create", "POST", None, body)
            return await self._write(object, "update", "PATCH", target, body)
        except _Unwritable as exc:
            return WriteResult(ok=False, error=str(exc))
        except RateLimited:
            raise
        except TransientError as exc:
            return WriteResult(ok=False, error=str(exc), transient=True)

    async def _find(self, object: ObjectName, our_id: str) -> str | None:
        """The live record holding ``our_id`` in our custom field (the lowest id if a lost
        answer ever made two), or None."""
        path = f"api/v2/{OBJECTS[object]}/search"
        params = {"term": our_id, "fields": "custom_fields", "exact_match": "true"}
        response = await self._request("search", "GET", path, params=params)
        if response.status == 400:
            raise _Unwritable(_error_text(response))  # e.g. an empty our_id: this record only
        if response.status != 200:
            raise PermanentError(
                f"Pipedrive GET /{path}: {response.status} {_error_text(response)}"
            )
        found = _parse(_Search, response.json(), f"GET /{path}")
        # Search matches any custom field and ignores case: keep exact holders of our id only.
        hits = sorted(h.item.id for h in found.data.items if our_id in h.item.custom_fields)
        return str(hits[0]) if hits else None

    async def _write(
        self, object: ObjectName, call: str, method: str, record_id: str | None, body: Any
    ) -> WriteResult:
        path = f"api/v2/{OBJECTS[object]}"
        if record_id is not None:
            path += f"/{record_id}"
        response = await self._request(call, method, path, json_body=body)
        if response.status == 404 and record_id is not None:
            return WriteResult(ok=False, provider_id=record_id, error="deleted at Pipedrive")
        if response.status == 400:
            return WriteResult(ok=False, provider_id=record_id, error=_error_text(response))
        if response.status != 200:
            raise PermanentError(
                f"Pipedrive {method} /{path}: {response.status} {_error_text(response)}"
            )
        one = _parse(_One, response.json(), f"{method} /{path}")
        record = _record(object, one.data, f"{method} /{path}")
        return WriteResult(
            ok=True, provider_id=record.id, created=method == "POST", updated_at=record.updated_at
        )

    async def delete(self, object: ObjectName, ids: Sequence[str]) -> list[WriteResult]:
        out: list[WriteResult] = []
        for record_id in ids:
            path = f"api/v2/{OBJECTS[object]}/{record_id}"
            try:
                response = await self._request("delete", "DELETE", path)
            except RateLimited:
                raise
            except TransientError as exc:
                out.append(
                    WriteResult(ok=False, provider_id=record_id, error=str(exc), transient=True)
                )
                continue
            if response.status in (200, 404):
                # 404: deleted already (by us before a lost answer, or by someone else).
                out.append(WriteResult(ok=True, provider_id=record_id))
            elif response.status == 400:
                out.append(
                    WriteResult(ok=False, provider_id=record_id, error=_error_text(response))
                )
            else:
                raise PermanentError(
                    f"Pipedrive DELETE /{path}: {response.status} {_error_text(response)}"
                )
        return out


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
