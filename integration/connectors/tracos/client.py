"""TracOS's work orders in MongoDB, through the driver's asyncio API.

Every call is retried under a ``RetryPolicy`` when MongoDB is unreachable or drops the
connection: the driver reconnects by itself once the server answers again. MongoDB going away
and coming back is logged once each (``Availability``); each retry is one DEBUG line saying how
long the failed attempt took and how long the wait before the next is, and no driver traceback
ever reaches the log. Writes are
compare-and-set against the document as it was read, so a retried or concurrent write never
overwrites a change it did not see.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Final, TypeVar, cast

from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WaitQueueTimeoutError,
)

from ...core.errors import IntegrationError, PermanentError, TransientError
from ...core.retry import RetryPolicy, retrying
from .availability import Availability
from .models import TracosChanges

log = logging.getLogger("integration.tracos")

Doc = dict[str, Any]
T = TypeVar("T")

TRANSIENT_CODES: Final = frozenset(
    {6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)
"""Server answers that mean "not now" (host unreachable, shutting down, stepped down, not
primary, time limit): worth another try once the server has settled."""

SYNC_FIELDS: Final = ("isSynced", "syncedAt")


def redact(uri: str) -> str:
    """``uri`` fit for a log or a terminal: a password becomes ``***``
    (``mongodb://ops:***@host``)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):[^@/]*@", r"\1:***@", uri)


def target(uri: str) -> str:
    """Where MongoDB is looked for, and the setting that says so, for a message."""
    return f"MongoDB at {redact(uri)} (MONGO_URI)"


def connect(uri: str, *, timeout: float) -> AsyncMongoClient[Doc]:
    """A client whose every wait is bounded: no server selection, connection or socket read
    waits longer than ``timeout`` (reads get a few times more, for a large page)."""
    ms = max(1, int(timeout * 1000))
    return AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=ms * 4,
        waitQueueTimeoutMS=ms,
        tz_aware=True,
        appname="integration-worker/tracos",
    )


def describe(exc: BaseException) -> str:
    """A driver error as one short line: its first clause, without the topology description
    that would otherwise fill a screen."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for cut in (" (configured timeouts", ", Timeout:", ", full error:"):
        text = text.split(cut, 1)[0]
    return text if len(text) <= 160 else text[:157] + "..."


PLAIN_REASONS: Final = (
    (re.compile(r"Errno 111\b|Connection refused|Connect call failed", re.I), "connection refused"),
    (
        re.compile(
            r"Errno -[235]\b|Name or service not known|nodename nor servname|"
            r"name resolution|getaddrinfo failed|No address associated",
            re.I,
        ),
        "host name not found",
    ),
    (re.compile(r"timed out", re.I), "no answer in time"),
)
HOST_PREFIX: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[\w.-]+):\d+: ")


def reason(exc: PyMongoError) -> str:
    """Why MongoDB did not answer, in plain words where the cause is a common one (``connection
    refused``, ``host name not found``), else the driver's own first clause; without the
    ``host:port:`` the driver puts first (the message names the URI already)."""
    text = HOST_PREFIX.sub("", describe(exc))
    for pattern, plain in PLAIN_REASONS:
        if pattern.search(text):
            return plain
    return text


class Unanswered(TransientError):
    """MongoDB did not answer (unreachable, timed out, shutting down...): worth another try.
    ``reason`` is the cause alone; ``took`` how long the attempt waited before giving up."""

    def __init__(self, message: str, *, reason: str, took: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.took = took


def is_transient(exc: PyMongoError) -> bool:
    if isinstance(exc, ConnectionFailure | WaitQueueTimeoutError | ExecutionTimeout):
        return True
    return isinstance(exc, OperationFailure) and (
        exc.code in TRANSIENT_CODES or exc.has_error_label("RetryableWriteError")
    )


def classify(exc: PyMongoError, what: str, *, took: float = 0.0) -> IntegrationError:
    if is_transient(exc):
        why = reason(exc)
        return Unanswered(f"MongoDB {what}: {why}", reason=why, took=took)
    return PermanentError(f"MongoDB {what}: {describe(exc)}")


def as_read(doc: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> Doc:
    """A filter matching ``doc`` only while it is as it was read: every top-level field equal.
    ``$eq`` keeps an embedded document's keys from being read as operators; names a filter
    would read as paths or operators are left out rather than misread."""
    filter_: Doc = {"_id": doc["_id"]}
    for key, value in doc.items():
        if key == "_id" or key in skip or key.startswith("$") or "." in key:
            continue
        filter_[key] = {"$eq": value}
    return filter_


def new_document(changes: TracosChanges) -> Doc:
    doc: Doc = {
        "number": changes.number,
        "status": changes.status.value,
        "title": changes.title,
        "description": "",  # no ERP counterpart; the field exists on every TracOS document
        "createdAt": changes.createdAt,
        "updatedAt": changes.updatedAt,
        "deleted": changes.deleted,
        "isSynced": False,
    }
    if changes.deletedAt is not None:
        doc["deletedAt"] = changes.deletedAt
    return doc


def update_spec(changes: TracosChanges) -> Doc:
    fields = new_document(changes)
    del fields["description"], fields["number"]
    spec: Doc = {"$set": fields}
    if changes.deletedAt is None:
        spec["$unset"] = {"deletedAt": ""}
    return spec


class WorkOrderStore:
    def __init__(
        self,
        collection: AsyncCollection[Doc],
        *,
        retry: RetryPolicy,
        availability: Availability | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.collection = collection
        self.availability = availability or Availability(monotonic=monotonic)
        self._max_tries = retry.max_tries
        self._monotonic = monotonic
        self._call = retrying(retry, on_retry=self._on_retry)(self._once)

    async def _once(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        started = self._monotonic()
        try:
            result = await op()
        except DuplicateKeyError:
            raise  # an answer, not a failure: the caller decides
        except PyMongoError as exc:
            raise classify(exc, what, took=self._monotonic() - started) from None
        self.availability.answering()
        return result

    def _on_retry(self, details: Mapping[str, Any]) -> None:
        exc = details.get("exception")
        if isinstance(exc, Unanswered):
            self.availability.failing(exc.reason, waited=exc.took)
        took = exc.took if isinstance(exc, Unanswered) else 0.0
        of = f" of {self._max_tries}" if self._max_tries is not None else ""
        # The attempt's own wait (a server selection timeout, say) is part of the gap between
        # attempts: both are said, so the log never claims a shorter pause than the real one.
        log.debug(
            "%s; attempt %d%s failed after %.2f s; next attempt in %.2f s",
            exc,
            details.get("tries", 0),
            of,
            took,
            details.get("wait", 0.0),
        )

    async def _run(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        return cast(T, await self._call(what, op))

    async def ping(self) -> None:
        """One attempt, no retries: whether MongoDB answers at all, within the client's
        timeout. Raises ``Unanswered`` or ``PermanentError`` (credentials refused, say)."""
        await self._once("ping", lambda: self.collection.database.command("ping"))

    async def ensure_indexes(self) -> None:
        """A unique index on ``number``, so two writers can never both insert one order.

        Existing duplicates make it impossible; that is said once and the sync goes on (its
        compare-and-set writes do not depend on the index)."""

        async def create() -> None:
            try:
                await self.collection.create_index("number", unique=True, name="number_unique")
            except OperationFailure as exc:
                if exc.code not in (11000, 85, 86):  # duplicates, or a conflicting index
                    raise
                log.warning("no unique index on number: %s", describe(exc))

        await self._run("create index", create)

    async def find_by_number(self, number: int) -> Doc | None:
        return await self._run(
            f"find order {number}", lambda: self.collection.find_one({"number": number})
        )

    async def insert(self, changes: TracosChanges) -> bool:
        """Insert a new work order; False when one with that number appeared meanwhile."""
        doc = new_document(changes)

        async def insert() -> None:
            await self.collection.insert_one(doc)

        try:
            await self._run(f"insert order {changes.number}", insert)
        except DuplicateKeyError:
            return False
        return True

    async def update_if_unchanged(self, current: Doc, changes: TracosChanges) -> bool:
        """Apply ``changes`` to ``current`` unless it changed since it was read."""

        async def update() -> int:
            result = await self.collection.update_one(as_read(current), update_spec(changes))
            return result.matched_count

        return await self._run(f"update order {changes.number}", update) == 1

    async def unsynced_page(self, after: ObjectId | None, limit: int) -> list[Doc]:
        """Up to ``limit`` documents not synced (``isSynced`` false or absent), by ``_id`` after
        ``after``. Pages, not one long cursor: a dropped connection costs one page, and a page
        is simply asked for again."""
        query: Doc = {"isSynced": {"$ne": True}}
        if after is not None:
            query["_id"] = {"$gt": after}

        async def page() -> list[Doc]:
            return await self.collection.find(query).sort("_id", 1).limit(limit).to_list()

        return await self._run("find unsynced orders", page)

    async def mark_synced(self, doc: Doc, at: datetime) -> bool:
        """Mark ``doc`` synced, unless it changed since it was read (it is then still not
        synced, and goes out again on the next pass)."""
        filter_ = as_read(doc, skip=SYNC_FIELDS) | {"isSynced": {"$ne": True}}

        async def mark() -> int:
            update = {"$set": {"isSynced": True, "syncedAt": at}}
            return (await self.collection.update_one(filter_, update)).matched_count

        return await self._run(f"mark order {doc.get('number')} synced", mark) == 1

    async def put(self, doc: Doc) -> None:
        """Replace (or insert) the work order with ``doc["number"]`` as it is: for sample data."""

        async def replace() -> None:
            await self.collection.replace_one({"number": doc["number"]}, doc, upsert=True)

        await self._run(f"write order {doc['number']}", replace)
