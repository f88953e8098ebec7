"""The Salesforce connector (REST API v60.0): Contact and Account over SOQL and the sObject
Collections (``docs/crm-providers.md``, Salesforce section).

- Reads are SOQL through ``queryAll`` so that records in the recycle bin come back with
  ``IsDeleted`` true (a delete is a change the sync must see).
- ``changed_since`` does not trust query locators: each batch is a fresh query from the last
  ``SystemModstamp`` seen (see ``changed_since``), because a locator over a live table can skip a
  record when an earlier one is modified while we page (the stand-in's "cursor drift").
- Writes go through the sObject Collections with ``allOrNone: false`` so that one bad record
  fails alone, and carry ``Sforce-Call-Options: client=<client_id>``: the loop marker Salesforce
  puts into the ``changeOrigin`` of its change events.
- Limits: one allocation of API requests per rolling 24 h; every request takes one unit. When it
  is spent Salesforce answers **403** ``REQUEST_LIMIT_EXCEEDED`` (not 429): the budget is told
  and ``RateLimited`` raised. Every answer's ``Sforce-Limit-Info: api-usage=used/max`` is kept in
  ``usage`` (what Salesforce counts, to calibrate our own count against).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from yarl import URL

from ...core.errors import PermanentError
from ...core.http import HttpService, Response
from .base import Budget, Dimension, ObjectName, RateLimited, RemoteRecord, Write, WriteResult

API = "/services/data/v60.0"
DIMENSION = "rolling24h"
REFUSED_WAIT = 300.0
"""Seconds to send nothing after a 403 ``REQUEST_LIMIT_EXCEEDED``. Salesforce says neither when
the rolling window frees a unit nor how many, so this is a guess: short enough to notice freed
capacity soon, long enough not to spend the budget's attention on refusals."""
MAX_BATCH = 200
"""Records per sObject Collections call (Salesforce's own limit)."""
IDS_PER_QUERY = 200
"""Ids per ``Id IN (...)`` query: at most one batch (batches are 200 to 2,000 records) and a URL
well under Salesforce's 16 KB limit for a GET."""
MAX_BATCHES = 1_000_000
"""More query batches than this in one read is a server that does not move on, not data."""
OBJECTS: dict[str, str] = {"contact": "Contact", "company": "Account"}
WRITABLE: dict[str, tuple[str, ...]] = {
    "Contact": ("FirstName", "LastName", "Email", "Phone", "Title", "AccountId", "Our_Id__c"),
    "Account": ("Name", "Website", "Phone", "Industry", "Our_Id__c"),
}
EXTERNAL_ID = "Our_Id__c"
SYSTEM = ("Id", "IsDeleted", "SystemModstamp")
GONE = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND"})
"""Delete errors that mean the record is already gone: the delete's goal holds."""
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_ID = re.compile(r"^[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$")
_SUFFIX = string.ascii_uppercase + "012345"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

CallKind = Literal["read", "write", "query"]


# -- the answers we rely on --------------------------------------------------------------------


class ApiError(BaseModel):
    """One item of Salesforce's error array (``[{message, errorCode[, fields]}]``)."""

    model_config = ConfigDict(extra="ignore")

    errorCode: str
    message: str = ""
    fields: list[str] = Field(default_factory=list)


API_ERRORS = TypeAdapter(list[ApiError])


class Row(BaseModel):
    """A record of a query batch: the system fields we select, the rest kept as sent."""

    model_config = ConfigDict(extra="allow")

    Id: str
    IsDeleted: bool
    SystemModstamp: int
    """Epoch milliseconds, as an integer so that times compare exactly."""

    @field_validator("SystemModstamp", mode="before")
    @classmethod
    def _epoch_ms(cls, value: Any) -> int:
        if not isinstance(value, str):
            raise ValueError("expected a date-time string")
        return parse_ms(value)


class QueryResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    totalSize: int
    done: bool
    nextRecordsUrl: str | None = None
    records: list[Row]


class SaveError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    statusCode: str
    message: str = ""
    fields: list[str] = Field(default_factory=list)


class SaveResult(BaseModel):
    """One record's outcome in an sObject Collections call (``created`` only on upserts)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    success: bool
    errors: list[SaveError] = Field(default_factory=list)
    created: bool | None = None


SAVE_RESULTS = TypeAdapter(list[SaveResult])

_T = TypeVar("_T")


# -- helpers -----------------------------------------------------------------------------------


def parse_ms(text: str) -> int:
    """Epoch milliseconds of a Salesforce date-time (``2026-01-01T00:00:00.000+0000``)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    if len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit():
        value = value[:-2] + ":" + value[-2:]  # fromisoformat wants the offset's colon
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"date-time without an offset: {text!r}")
    return (moment - _EPOCH) // _MS


def soql_time(second: int) -> str:
    """A SOQL date-time literal for an epoch second (``2026-01-01T00:00:00Z``).

    Query bounds are whole seconds: the documented literal has no fraction, and Salesforce
    compares date-times to the second (it ignores milliseconds, and stores ``.000``), so a bound
    finer than that would not mean what it says."""
    return (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")


def since_second(since: float) -> int:
    """``since`` (epoch seconds) as a whole-second lower bound, never above it: rounding down
    can only read a record twice, rounding up could miss one."""
    return math.floor(since)


def id18(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id (None when it is not an id): queries
    compare ``Id`` as text, and Salesforce answers with the 18-character form."""
    if not _ID.match(value):
        return None
    suffix = ""
    for chunk in (value[0:5], value[5:10], value[10:15]):
        suffix += _SUFFIX[sum(1 << i for i, char in enumerate(chunk) if char.isupper())]
    if len(value) == 18:
        return value if value[15:] == suffix else None
    return value + suffix


def chunks(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(errors: Sequence[SaveError]) -> str:
    """``DUPLICATE_EXTERNAL_ID on Our_Id__c: ...; INVALID_EMAIL_ADDRESS on Email: ...``."""
    parts = []
    for error in errors:
        where = f" on {', '.join(error.fields)}" if error.fields else ""
        parts.append(f"{error.statusCode}{where}: {_one_line(error.message)}")
    return "; ".join(parts) or "refused without an error"


def _wrong_shape(what: str, exc: ValidationError) -> PermanentError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return PermanentError(
        f"Salesforce {what}: answer has the wrong shape ({where}: {first['msg']})"
    )


class SalesforceConnector:
    """One Salesforce org, as the CRM sync uses it (``base.Connector``)."""

    kind = "salesforce"
    max_batch = MAX_BATCH

    def __init__(
        self,
        http: HttpService,
        budget: Budget,
        *,
        client_id: str = "integration-worker",
        allocation: int = 100_000,
        window: float = 86_400.0,
    ) -> None:
        self.http = http
        self.budget = budget
        self.client_id = client_id
        self.allocation = allocation
        self.window = window
        self.usage: tuple[int, int] | None = None
        """The last ``Sforce-Limit-Info`` seen: (requests used, allocation), as Salesforce counts
        them over its rolling window; None before the first answer carrying it."""
        # Salesforce writes this client id into changeOrigin: how our own writes are told apart.
        self._marker = {"Sforce-Call-Options": f"client={client_id}"}

    def __repr__(self) -> str:
        return f"SalesforceConnector({self.http.display_url!r}, client_id={self.client_id!r})"

    def dimensions(self) -> Sequence[Dimension]:
        # Every API request takes one unit of the org's allocation, whatever it does.
        return [
            Dimension(
                DIMENSION,
                limit=self.allocation,
                window=self.window,
                rolling=True,
                costs={"read": 1, "write": 1, "query": 1},
            )
        ]

    def is_ours(self, record: RemoteRecord) -> bool | None:
        # Only change events carry changeOrigin (with our client id). Records read by polling
        # (SOQL) say nothing about who changed them last, so this connector cannot tell.
        return None

    # -- requests ------------------------------------------------------------------------------

    async def _request(
        self,
        call: CallKind,
        method: str,
        path_or_url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Response:
        """One request, after the budget allows it. 5xx and timeouts raise ``TransientError``
        (from ``HttpService``); a 403 for the allocation raises ``RateLimited``."""
        await self.budget.take(call)
        response = await self.http.request(
            method,
            path_or_url,
            params=params,
            json_body=json_body,
            headers=self._marker if call == "write" else None,
        )
        self._note_usage(response)
        if response.status == 403:
            errors = self._errors(response)
            if any(e.errorCode == "REQUEST_LIMIT_EXCEEDED" for e in errors):
                self.budget.refused(DIMENSION, REFUSED_WAIT)
                raise RateLimited(
                    f"Salesforce {method} {response.url.path}: REQUEST_LIMIT_EXCEEDED "
                    f"(api-usage {self._usage_text()})",
                    dimension=DIMENSION,
                    wait=REFUSED_WAIT,
                )
        if response.status == 401:
            raise PermanentError(
                f"Salesforce refused the credentials (401 on {method} {response.url.path})"
            )
        return response

    def _note_usage(self, response: Response) -> None:
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match is not None:
            self.usage = (int(match.group(1)), int(match.group(2)))

    def _usage_text(self) -> str:
        return "unknown" if self.usage is None else f"{self.usage[0]}/{self.usage[1]}"

    @staticmethod
    def _errors(response: Response) -> list[ApiError]:
        """Salesforce's error array; empty when the body is not one."""
        try:
            return API_ERRORS.validate_json(response.body)
        except ValidationError:
            return []

    def _unexpected(self, response: Response, doing: str) -> PermanentError:
        errors = self._errors(response)
        if errors:
            text = "; ".join(
                f"{e.errorCode}{' on ' + ', '.join(e.fields) if e.fields else ''}: "
                f"{_one_line(e.message)}"
                for e in errors
            )
        else:
            text = response.body[:200].decode("utf-8", "replace").strip()
        return PermanentError(f"Salesforce {doing}: unexpected {response.status} {text}"[:400])

    def _ok(self, response: Response, doing: str) -> Response:
        if response.status != 200:
            raise self._unexpected(response, doing)
        return response

    # -- reads ---------------------------------------------------------------------------------

    async def _query(self, soql: str) -> QueryResult:
        response = self._ok(
            await self._request("query", "GET", f"{API}/queryAll", params={"q": soql}),
            "queryAll",
        )
        return self._result(response, "queryAll")

    async def _more(self, link: str) -> QueryResult:
        # Only ever to the configured origin: the link comes from the server.
        response = self._ok(
            await self._request("query", "GET", self.http.same_origin(link)), "queryAll batch"
        )
        return self._result(response, "queryAll batch")

    @staticmethod
    def _result(response: Response, what: str) -> QueryResult:
        try:
            return QueryResult.model_validate_json(response.body)
        except ValidationError as exc:
            raise _wrong_shape(what, exc) from None

    def _select(self, sobject: str) -> str:
        return f"SELECT {', '.join((*WRITABLE[sobject], *SYSTEM))} FROM {sobject}"

    def _record(self, object: ObjectName, sobject: str, row: Row) -> RemoteRecord:
        extra = row.model_extra or {}
        missing = [name for name in WRITABLE[sobject] if name not in extra]
        if missing:
            raise PermanentError(
                f"Salesforce queryAll: {sobject} {row.Id} comes without {', '.join(missing)}"
            )
        fields = {name: extra[name] for name in WRITABLE[sobject]}
        our_id = fields.get(EXTERNAL_ID)
        return RemoteRecord(
            object=object,
            id=row.Id,
            fields=fields,
            updated_at=row.SystemModstamp / 1000,
            deleted=row.IsDeleted,
            our_id=our_id if isinstance(our_id, str) and our_id else None,
        )

    async def changed_since(
        self, object: ObjectName, since: float | None
    ) -> AsyncIterator[list[RemoteRecord]]:
        """Records (deleted ones too) modified at or after ``since``, oldest first, in batches.

        The query locator (``nextRecordsUrl``) is not followed: it is an offset into a result
        that may shift while we page (a record modified behind the offset moves to the end and
        the record that slides into the offset is never served). Each batch is instead a fresh
        query from the second of the last ``SystemModstamp`` seen, ``>=`` so that the records
        sharing that second are read again (duplicates, never losses); ``done`` says when
        nothing is left. (Bounds are whole seconds: see ``soql_time``.)

        A batch whose records all fall in one second cannot move that bound on: that second's
        records are then read in ``Id`` order, from the last Id seen (``_same_second``), and the
        read goes on from the next second. Every step moves a bound strictly forward, so the
        read ends however many records share a second.
        """
        sobject = OBJECTS[object]
        lower = None if since is None else since_second(since)
        for _ in range(MAX_BATCHES):
            where = "" if lower is None else f" WHERE SystemModstamp >= {soql_time(lower)}"
            result = await self._query(
                f"{self._select(sobject)}{where} ORDER BY SystemModstamp ASC"
            )
            rows = result.records
            self._check_order(rows, lower, sobject)
            if rows:
                yield [self._record(object, sobject, row) for row in rows]
            if result.done:
                return
            if not rows:
                raise PermanentError(
                    f"Salesforce queryAll {sobject}: an empty batch that is not the last"
                )
            first, last = rows[0].SystemModstamp // 1000, rows[-1].SystemModstamp // 1000
            if first == last:
                async for batch in self._same_second(object, sobject, last):
                    yield batch
                lower = last + 1
            else:
                lower = last
        raise PermanentError(f"Salesforce queryAll {sobject}: more than {MAX_BATCHES} batches")

    async def _same_second(
        self, object: ObjectName, sobject: str, second: int
    ) -> AsyncIterator[list[RemoteRecord]]:
        """Every record modified within the epoch second ``second``, in batches by Id, each
        from the last Id seen: a key that does not move when a record is modified (it leaves
        the second, to be read later)."""
        within = (
            f"SystemModstamp >= {soql_time(second)} AND SystemModstamp < {soql_time(second + 1)}"
        )
        after: str | None = None
        for _ in range(MAX_BATCHES):
            where = within if after is None else f"{within} AND Id > '{after}'"
            result = await self._query(f"{self._select(sobject)} WHERE {where} ORDER BY Id ASC")
            rows = result.records
            ids = [row.Id for row in rows]
            if ids != sorted(ids) or (after is not None and ids and ids[0] <= after):
                raise PermanentError(f"Salesforce queryAll {sobject}: a batch not ordered by Id")
            if rows:
                yield [self._record(object, sobject, row) for row in rows]
            if result.done:
                return
            if not rows:
                raise PermanentError(
                    f"Salesforce queryAll {sobject}: an empty batch that is not the last"
                )
            after = ids[-1]
        raise PermanentError(f"Salesforce queryAll {sobject}: more than {MAX_BATCHES} batches")

    @staticmethod
    def _check_order(rows: Sequence[Row], lower: int | None, sobject: str) -> None:
        """A batch out of order or below the bound would make the next bound wrong (a loss or
        a loop): refuse it rather than guess."""
        times = [row.SystemModstamp // 1000 for row in rows]
        if times != sorted(times):
            raise PermanentError(
                f"Salesforce queryAll {sobject}: a batch not ordered by SystemModstamp"
            )
        if lower is not None and times and times[0] < lower:
            raise PermanentError(
                f"Salesforce queryAll {sobject}: a record modified before the query's bound"
            )

    async def get(self, object: ObjectName, ids: Sequence[str]) -> list[RemoteRecord | None]:
        """By ``queryAll`` with ``Id IN (...)``: unlike the sObject reads it shows records in
        the recycle bin (``deleted=True``). An id Salesforce does not know (or a purged one, or
        a text that is no id) is None."""
        sobject = OBJECTS[object]
        wanted = [id18(raw) for raw in ids]
        known = sorted({i for i in wanted if i is not None})
        found: dict[str, RemoteRecord] = {}
        for chunk in chunks(known, IDS_PER_QUERY):
            # Ids matched the id pattern (letters and digits only): safe inside quotes.
            listed = ", ".join(f"'{i}'" for i in chunk)
            result = await self._query(f"{self._select(sobject)} WHERE Id IN ({listed})")
            links: set[str] = set()
            while True:
                for row in result.records:
                    found[row.Id] = self._record(object, sobject, row)
                link = result.nextRecordsUrl
                if result.done or link is None:
                    break
                if link in links:
                    raise PermanentError("Salesforce queryAll: nextRecordsUrl loops")
                links.add(link)
                # Not reached in practice (200 ids fit one batch, which holds 200 to 2,000): a
                # safeguard, where following the locator is all there is to do.
                result = await self._more(link)
        return [None if i is None else found.get(i) for i in wanted]

    # -- writes --------------------------------------------------------------------------------

    async def upsert(self, object: ObjectName, writes: Sequence[Write]) -> list[WriteResult]:
        """Writes with ``provider_id``: a collection update of that record. Without: a
        collection upsert on ``Our_Id__c`` (Salesforce finds the record holding our id or
        creates it), so repeating a write whose answer was lost never makes a second record.

        An update by id leaves ``Our_Id__c`` as it is: a record born at Salesforce never gets our
        id, so the key it is known by (its Salesforce id) never changes."""
        sobject = OBJECTS[object]
        results: list[WriteResult | None] = [None] * len(writes)
        updates = [(i, w) for i, w in enumerate(writes) if w.provider_id is not None]
        for chunk in chunks(updates, MAX_BATCH):
            records = [
                {
                    "attributes": {"type": sobject},
                    **w.fields,
                    "id": w.provider_id,
                }
                for _, w in chunk
            ]
            saved = await self._save("PATCH", f"{API}/composite/sobjects", records)
            for (i, w), result in zip(chunk, saved, strict=True):
                results[i] = self._write_result(result, w.provider_id)
        for chunk in self._upsert_rounds(
            [(i, w) for i, w in enumerate(writes) if w.provider_id is None]
        ):
            records = [
                {"attributes": {"type": sobject}, **w.fields, EXTERNAL_ID: w.our_id}
                for _, w in chunk
            ]
            path = f"{API}/composite/sobjects/{sobject}/{EXTERNAL_ID}"
            saved = await self._save("PATCH", path, records)
            for (i, _), result in zip(chunk, saved, strict=True):
                results[i] = self._write_result(result, None)
        return [r for r in results if r is not None]

    @staticmethod
    def _upsert_rounds(
        writes: Sequence[tuple[int, Write]],
    ) -> list[Sequence[tuple[int, Write]]]:
        """Calls of at most ``MAX_BATCH`` in which no two writes share an ``our_id``: within one
        call both would miss the record and both create one."""
        rounds: list[list[tuple[int, Write]]] = []
        ids_in: list[set[str]] = []
        for item in writes:
            for batch, held in zip(rounds, ids_in, strict=True):
                if item[1].our_id not in held and len(batch) < MAX_BATCH:
                    batch.append(item)
                    held.add(item[1].our_id)
                    break
            else:
                rounds.append([item])
                ids_in.append({item[1].our_id})
        return list(rounds)

    async def delete(self, object: ObjectName, ids: Sequence[str]) -> list[WriteResult]:
        """To the recycle bin (``IsDeleted`` true, still read by ``queryAll``). A record already
        deleted or unknown (``ENTITY_IS_DELETED``, ``NOT_FOUND``) is ``ok``: it is gone."""
        out: list[WriteResult] = []
        for chunk in chunks(ids, MAX_BATCH):
            params = {"ids": ",".join(chunk), "allOrNone": "false"}
            response = self._ok(
                await self._request("write", "DELETE", f"{API}/composite/sobjects", params=params),
                "DELETE /composite/sobjects",
            )
            saved = self._save_results(response, len(chunk), "DELETE /composite/sobjects")
            for record_id, result in zip(chunk, saved, strict=True):
                if result.success or (
                    result.errors and {e.statusCode for e in result.errors} <= GONE
                ):
                    out.append(WriteResult(ok=True, provider_id=result.id or record_id))
                else:
                    out.append(
                        WriteResult(ok=False, provider_id=record_id, error=_describe(result.errors))
                    )
        return out

    async def _save(
        self, method: str, path: str, records: list[dict[str, Any]]
    ) -> list[SaveResult]:
        doing = f"{method} {path}"
        response = self._ok(
            await self._request(
                "write", method, path, json_body={"allOrNone": False, "records": records}
            ),
            doing,
        )
        return self._save_results(response, len(records), doing)

    @staticmethod
    def _save_results(response: Response, expected: int, doing: str) -> list[SaveResult]:
        try:
            results = SAVE_RESULTS.validate_json(response.body)
        except ValidationError as exc:
            raise _wrong_shape(doing, exc) from None
        if len(results) != expected:
            raise PermanentError(
                f"Salesforce {doing}: {len(results)} results for {expected} records"
            )
        return results

    @staticmethod
    def _write_result(result: SaveResult, provider_id: str | None) -> WriteResult:
        if result.success:
            return WriteResult(
                ok=True, provider_id=result.id or provider_id, created=bool(result.created)
            )
        return WriteResult(ok=False, provider_id=provider_id, error=_describe(result.errors))
