"""HubSpot's CRM v3 objects API (contacts, companies) as a CRM ``Connector``
(``docs/crm-providers.md``, HubSpot section).

- Reading changes: every live record through the list endpoint (a stable id cursor), or a search
  on the last-modified property. Search's ``after`` is an offset that drifts as records change
  and stops at 10,000, so it is never used: each page is a new query from the last modified time
  seen (``GTE``: a record may come twice). A page that is all one timestamp is read on by id
  within that timestamp, a cursor that cannot drift (a record only ever leaves a past timestamp).
- Writes: ``batch/update`` by provider id, ``batch/upsert`` by ``our_id`` (unique), 100 a call;
  each input carries an ``objectWriteTraceId`` so a 207's results and errors map back to it.
- Limits: a 429 tells the budget which dimension refused and raises ``RateLimited``. HubSpot
  names the limit only in the 429's body (``policyName``, carried by the ``TransientError``);
  without it the refusal is taken as the burst's, the widest one that is not a day.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response, unexpected
from .base import (
    Budget,
    Dimension,
    ObjectName,
    RateLimited,
    RemoteRecord,
    Write,
    WriteResult,
)

OBJECTS: dict[ObjectName, str] = {"contact": "contacts", "company": "companies"}
PROPERTIES: dict[ObjectName, tuple[str, ...]] = {
    "contact": ("firstname", "lastname", "email", "phone", "company", "lifecyclestage", "our_id"),
    "company": ("name", "domain", "phone", "city", "industry", "our_id"),
}
"""The writable properties: what a record's ``fields`` hold, and all a read asks for."""
MODIFIED: dict[ObjectName, str] = {"contact": "lastmodifieddate", "company": "hs_lastmodifieddate"}
"""The last-modified property is named differently per object, as in HubSpot."""
ID_PROPERTY = "our_id"
MAX_BATCH = 100
DAY = 86_400.0
DAILY_WAIT = 3_600.0
"""How long a refused daily budget holds: HubSpot does not say when the account's day ends."""
SEARCH_WAIT = 1.0


# -- answers relied on -------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HsObject(_Answer):
    id: str
    properties: dict[str, str | None]
    updatedAt: datetime
    archived: bool = False


class _Next(_Answer):
    after: str


class _Paging(_Answer):
    next: _Next | None = None


class Page(_Answer):
    """A list or search answer."""

    results: list[HsObject]
    paging: _Paging | None = None

    @property
    def after(self) -> str | None:
        return self.paging.next.after if self.paging and self.paging.next else None


class BatchResult(HsObject):
    objectWriteTraceId: str | None = None
    new: bool | None = None


class BatchError(_Answer):
    category: str = "ERROR"
    message: str
    context: dict[str, list[str]] = Field(default_factory=dict)


class BatchAnswer(_Answer):
    results: list[BatchResult] = Field(default_factory=list)
    errors: list[BatchError] = Field(default_factory=list)


A = TypeVar("A", bound=BaseModel)


def _parse(model: type[A], response: Response, doing: str) -> A:
    try:
        return model.model_validate(response.json())
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(body)"
        raise PermanentError(
            f"HubSpot {doing}: malformed answer ({response.status}): {where}: {first['msg']}"
        ) from None


def _wire(value: Any) -> str:
    """HubSpot takes every property as a string; ``""`` clears one."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ms(record: HsObject) -> int:
    return round(record.updatedAt.timestamp() * 1000)


# -- the connector -----------------------------------------------------------------------------


class HubSpotConnector:
    kind = "hubspot"
    max_batch = MAX_BATCH

    def __init__(
        self,
        http: HttpService,
        budget: Budget,
        *,
        burst: int = 100,
        burst_window: float = 10.0,
        daily: int = 250_000,
        search_per_second: int = 4,
        page_size: int = 100,
    ) -> None:
        if not 1 <= page_size <= 100:
            raise ValueError(f"page_size must be 1..100, got {page_size}")
        self.http = http
        self.budget = budget
        self.burst = burst
        self.burst_window = burst_window
        self.daily = daily
        self.search_per_second = search_per_second
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"HubSpotConnector({self.http.display_url!r})"

    def dimensions(self) -> Sequence[Dimension]:
        return (
            Dimension("burst", self.burst, self.burst_window),
            Dimension("daily", self.daily, DAY, rolling=False),
            Dimension("search", self.search_per_second, 1.0, costs={"search": 1}, default_cost=0),
        )

    def is_ours(self, record: RemoteRecord) -> bool | None:
        return None  # a polled record carries no marker of who changed it

    # -- requests ------------------------------------------------------------------------------

    async def _request(
        self,
        call: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> Response:
        await self.budget.take(call)
        try:
            return await self.http.request(method, path, params=params, json_body=body)
        except TransientError as error:
            if error.status == 429:
                raise self._refused(call, _policy(error.body), error.retry_after) from None
            raise

    def _refused(self, call: str, policy: str | None, retry_after: float | None) -> RateLimited:
        """Tell the budget which limit refused ``call`` and for how long, as ``RateLimited``.

        ``policy`` None (the body was not seen): the burst, which holds every kind of call for
        its window. Guessing a shorter wait would only earn more 429s, which HubSpot counts
        against an app."""
        if policy == "DAILY":
            dimension, wait = "daily", DAILY_WAIT
        elif policy == "SECONDLY":
            dimension, wait = "search", SEARCH_WAIT
        else:
            dimension, wait = "burst", self.burst_window
        if retry_after is not None:  # the provider's own word, where it gives one
            wait = retry_after
        self.budget.refused(dimension, wait)
        return RateLimited(
            f"HubSpot refused a {call} call ({policy or 'limit unknown'}): "
            f"nothing on {dimension} for {wait:g} s",
            dimension=dimension,
            wait=wait,
        )

    def _record(self, object: ObjectName, item: HsObject) -> RemoteRecord:
        props = item.properties
        # HubSpot clears a property by setting "" and then answers "" or null alike: both are
        # None here, so a cleared field reads back as what was written.
        fields = {name: props.get(name) or None for name in PROPERTIES[object]}
        return RemoteRecord(
            object=object,
            id=item.id,
            fields=fields,
            updated_at=item.updatedAt.timestamp(),
            deleted=item.archived,
            our_id=props.get(ID_PROPERTY) or None,
        )

    # -- reads ---------------------------------------------------------------------------------

    async def changed_since(
        self, object: ObjectName, since: float | None
    ) -> AsyncIterator[list[RemoteRecord]]:
        if since is None:
            async for listed in self._list_all(object):
                yield listed
            return
        modified = MODIFIED[object]
        cursor = math.floor(since * 1000)
        strict = False  # after reading a timestamp to its end by id: GT, not GTE
        while True:
            op = "GT" if strict else "GTE"
            page = await self._search(object, [(modified, op, str(cursor))], modified)
            if page.results:
                yield [self._record(object, item) for item in page.results]
            if page.after is None or not page.results:
                return
            last = _ms(page.results[-1])
            if last < cursor:  # would move the cursor back: a loop, not data
                raise PermanentError(
                    f"HubSpot search of {OBJECTS[object]}: answered a record modified before "
                    f"its filter ({page.results[-1].id})"
                )
            if strict or last > cursor:
                cursor, strict = last, False
                continue
            # A full page all at ``cursor``: re-querying from it would answer the same page.
            # The timestamp is read again whole by id, as HubSpot orders ties as it likes.
            async for rest in self._same_time(object, cursor, "0"):
                yield rest
            strict = True

    async def _same_time(
        self, object: ObjectName, ms: int, after_id: str
    ) -> AsyncIterator[list[RemoteRecord]]:
        """The records still at modified time ``ms`` with ids above ``after_id``, by id."""
        while True:
            filters = [(MODIFIED[object], "EQ", str(ms)), ("hs_object_id", "GT", after_id)]
            page = await self._search(object, filters, "hs_object_id")
            if page.results:
                yield [self._record(object, item) for item in page.results]
            if page.after is None or not page.results:
                return
            after_id = page.results[-1].id

    async def _search(
        self, object: ObjectName, filters: list[tuple[str, str, str]], sort: str
    ) -> Page:
        body = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": name, "operator": op, "value": value}
                        for name, op, value in filters
                    ]
                }
            ],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(PROPERTIES[object]),
            "limit": self.page_size,
        }
        doing = f"search of {OBJECTS[object]}"
        response = await self._request(
            "search", "POST", f"crm/v3/objects/{OBJECTS[object]}/search", body=body
        )
        if response.status != 200:
            raise unexpected(response, f"HubSpot {doing}")
        return _parse(Page, response, doing)

    async def _list_all(self, object: ObjectName) -> AsyncIterator[list[RemoteRecord]]:
        params = {"limit": str(self.page_size), "properties": ",".join(PROPERTIES[object])}
        doing = f"list of {OBJECTS[object]}"
        while True:
            response = await self._request(
                "list", "GET", f"crm/v3/objects/{OBJECTS[object]}", params=params
            )
            if response.status != 200:
                raise unexpected(response, f"HubSpot {doing}")
            page = _parse(Page, response, doing)
            if page.results:
                yield [self._record(object, item) for item in page.results]
            if page.after is None or not page.results:
                return
            params = {**params, "after": page.after}

    async def get(self, object: ObjectName, ids: Sequence[str]) -> list[RemoteRecord | None]:
        found: dict[str, RemoteRecord] = {}
        for start in range(0, len(ids), MAX_BATCH):
            chunk = ids[start : start + MAX_BATCH]
            body = {"inputs": [{"id": i} for i in chunk], "properties": list(PROPERTIES[object])}
            doing = f"batch read of {OBJECTS[object]}"
            response = await self._request(
                "read", "POST", f"crm/v3/objects/{OBJECTS[object]}/batch/read", body=body
            )
            if response.status not in (200, 207):
                raise unexpected(response, f"HubSpot {doing}")
            for item in _parse(BatchAnswer, response, doing).results:
                found[item.id] = self._record(object, item)
        # batch/read answers live records only; an archived one is read alone with archived=true.
        for missing in dict.fromkeys(i for i in ids if i not in found):
            record = await self._get_archived(object, missing)
            if record is not None:
                found[missing] = record
        return [found.get(i) for i in ids]

    async def _get_archived(self, object: ObjectName, id: str) -> RemoteRecord | None:
        params = {"archived": "true", "properties": ",".join(PROPERTIES[object])}
        path = f"crm/v3/objects/{OBJECTS[object]}/{id}"
        response = await self._request("read", "GET", path, params=params)
        if response.status == 404:
            return None
        if response.status != 200:
            raise unexpected(response, f"HubSpot read of archived {OBJECTS[object]} {id}")
        return self._record(object, _parse(HsObject, response, f"read of {id}"))

    # -- writes --------------------------------------------------------------------------------

    async def upsert(self, object: ObjectName, writes: Sequence[Write]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for start in range(0, len(writes), MAX_BATCH):
            chunk = writes[start : start + MAX_BATCH]
            outcome: dict[int, WriteResult] = {}
            updates = [(n, w) for n, w in enumerate(chunk) if w.provider_id is not None]
            upserts = [(n, w) for n, w in enumerate(chunk) if w.provider_id is None]
            if updates:
                inputs = [
                    {
                        "id": w.provider_id,
                        "properties": {k: _wire(v) for k, v in w.fields.items()},
                        "objectWriteTraceId": str(n),
                    }
                    for n, w in updates
                ]
                outcome.update(await self._batch_write(object, "update", inputs))
            if upserts:
                inputs = [
                    {
                        "id": w.our_id,
                        "idProperty": ID_PROPERTY,
                        "properties": {
                            **{k: _wire(v) for k, v in w.fields.items()},
                            ID_PROPERTY: w.our_id,
                        },
                        "objectWriteTraceId": str(n),
                    }
                    for n, w in upserts
                ]
                outcome.update(await self._batch_write(object, "upsert", inputs))
            missing = WriteResult(
                ok=False, error="HubSpot answered nothing for this record", transient=True
            )
            results.extend(outcome.get(n, missing) for n in range(len(chunk)))
        return results

    async def _batch_write(
        self, object: ObjectName, action: str, inputs: list[dict[str, Any]]
    ) -> dict[int, WriteResult]:
        """One batch call: each input's outcome by its trace id (its index in the chunk)."""
        doing = f"batch {action} of {OBJECTS[object]}"
        response = await self._request(
            "write",
            "POST",
            f"crm/v3/objects/{OBJECTS[object]}/batch/{action}",
            body={"inputs": inputs},
        )
        if response.status not in (200, 201, 207):
            raise unexpected(response, f"HubSpot {doing}")
        answer = _parse(BatchAnswer, response, doing)
        out: dict[int, WriteResult] = {}
        for item in answer.results:
            if item.objectWriteTraceId is None or not item.objectWriteTraceId.isdigit():
                raise PermanentError(f"HubSpot {doing}: a result without our objectWriteTraceId")
            out[int(item.objectWriteTraceId)] = WriteResult(
                ok=True,
                provider_id=item.id,
                created=bool(item.new),
                updated_at=item.updatedAt.timestamp(),
            )
        by_id = {str(i["id"]): int(i["objectWriteTraceId"]) for i in inputs}
        for error in answer.errors:
            failed = WriteResult(ok=False, error=f"{error.category}: {error.message}")
            traces = error.context.get("objectWriteTraceId")
            if traces:
                targets = [int(t) for t in traces if t.isdigit()]
            else:  # tied to its input by id only
                targets = [by_id[i] for i in error.context.get("ids", []) if i in by_id]
            for n in targets:
                out[n] = failed
        return out

    async def delete(self, object: ObjectName, ids: Sequence[str]) -> list[WriteResult]:
        doing = f"batch archive of {OBJECTS[object]}"
        for start in range(0, len(ids), MAX_BATCH):
            body = {"inputs": [{"id": i} for i in ids[start : start + MAX_BATCH]]}
            response = await self._request(
                "write", "POST", f"crm/v3/objects/{OBJECTS[object]}/batch/archive", body=body
            )
            # HubSpot answers 204 whether or not a record was there to archive.
            if response.status not in (200, 204):
                raise unexpected(response, f"HubSpot {doing}")
        return [WriteResult(ok=True, provider_id=i) for i in ids]


def _policy(body: bytes | None) -> str | None:
    """The ``policyName`` of a 429's body (which limit refused), or None."""
    try:
        doc = json.loads(body or b"")
    except ValueError:
        return None
    policy = doc.get("policyName") if isinstance(doc, dict) else None
    return policy if isinstance(policy, str) else None
