"""What the TracOS sync reads: the ERP's inbound folder, and TracOS's work orders not synced.

Both are pending sources: each holds its work until the sink takes it out (a file moved out of
the folder, a document marked synced), so every poll lists everything outstanding and the inbox
keeps what it does not have yet. A page's body is what was read, as JSON, so the entries can be
validated again when they are applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC
from typing import Any

from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS
from pydantic import ValidationError

from ...connectors.erp_files.files import Candidate, FileRejected, Inbox, parse_order, shown
from ...connectors.tracos.client import WorkOrderStore
from ...connectors.tracos.models import TracosWorkOrder
from ...core.errors import TransientError
from ...core.flow import Page, Received
from ...core.store import NewEntry, Rejected

log = logging.getLogger("integration.tracos")

PAGE_FILES = 100
PAGE_BYTES = 8_000_000
"""A page of files ends at this many files or this much content, whichever comes first."""

PAGE_ORDERS = 200

MONGO_JSON = RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)
"""Documents as JSON and back without losing a type a compare-and-set filter relies on."""


# -- the inbound folder ------------------------------------------------------------------


def file_identity(stat: os.stat_result) -> str:
    """Which file this is, beyond its name and content: the ERP may send the same content
    under the same name again after the first was processed, and that is a new file to apply
    (and to move), not a duplicate of the first. A rename or a rewrite changes the change
    time; a file left where it was (a crash, a second poll) keeps it."""
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_ctime_ns}"


def file_content(record: Mapping[str, Any]) -> bytes:
    """A file's bytes as read, from its record (kept as text: undecodable bytes escaped)."""
    return str(record["content"]).encode("utf-8", "surrogateescape")


class ErpInboundFiles:
    """The ``*.json`` files in the inbound folder, one inbox entry per file: keyed by its work
    order's number (so two files of one order are applied in order), or by its name when it is
    not a work order (it is then set aside by the sink, with its reason)."""

    name = "tracos-inbound"

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def fetch_pending(self) -> AsyncIterator[Received]:
        try:
            candidates = await asyncio.to_thread(self._scan)
        except OSError as exc:
            raise TransientError(f"inbound folder {self.inbox.folder} unusable: {exc}") from None
        page: list[dict[str, str]] = []
        size = 0
        for candidate in candidates:
            record = await asyncio.to_thread(self._look, candidate)
            if record is None:
                continue
            page.append(record)
            size += len(record.get("content", ""))
            if len(page) >= PAGE_FILES or size >= PAGE_BYTES:
                yield Received(json.dumps(page).encode())
                page, size = [], 0
        if page:
            yield Received(json.dumps(page).encode())

    def _scan(self) -> list[Candidate]:
        self.inbox.prepare()
        return self.inbox.scan()

    def _look(self, candidate: Candidate) -> dict[str, str] | None:
        """The file as a record: its name, identity and content, or why it cannot be read.
        None when it vanished since the scan (the ERP took it back)."""
        name = candidate.name
        try:
            identity = file_identity(os.lstat(self.inbox.folder / name))
        except FileNotFoundError:
            return None
        record = {"name": name, "file": identity}
        if candidate.problem is not None:
            return record | {"problem": candidate.problem}
        try:
            data = self.inbox.read_bytes(name)
        except FileNotFoundError:
            return None
        except FileRejected as exc:
            return record | {"problem": str(exc)}
        return record | {"content": data.decode("utf-8", "surrogateescape")}

    def parse(self, body: bytes) -> Page:
        entries = []
        for record in json.loads(body):
            name = str(record["name"])
            if "content" in record:
                data = file_content(record)
                key = order_key(data) or shown(name)
            else:
                data, key = str(record["problem"]).encode(), shown(name)
            digest = hashlib.sha256(data).hexdigest()
            entries.append(
                NewEntry(
                    key=key,
                    kind="file",
                    fingerprint=f"{name}:{record['file']}:{digest}",
                    payload=json.dumps(record),
                )
            )
        return Page(entries)


def order_key(data: bytes) -> str | None:
    """The work order number a file holds, if it holds a work order."""
    try:
        return str(parse_order(data).orderNo)
    except FileRejected:
        return None


# -- TracOS's work orders not synced ------------------------------------------------------


def invalid_reason(raw: Mapping[str, Any], exc: ValidationError) -> str:
    """Why a document is no work order we can send, in one line naming it and the field."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"work order {raw.get('number')} (_id {raw.get('_id')}) not sent: {where}: {err['msg']}"


def document_json(raw: Mapping[str, Any] | list[dict[str, Any]]) -> str:
    return json_util.dumps(raw, json_options=MONGO_JSON)


def document_from(payload: str | bytes) -> Any:
    return json_util.loads(payload, json_options=MONGO_JSON)


class TracosUnsynced:
    """The work orders whose ``isSynced`` is not true, page by page. A document is one entry per
    version: its fingerprint is its ``_id``, update time and a hash of the whole document, so a
    document changed after it was listed is listed again as a new entry."""

    name = "tracos-outbound"

    def __init__(self, store: WorkOrderStore, *, page: int = PAGE_ORDERS) -> None:
        self.store = store
        self.page = page
        self._said: set[str] = set()
        """Fingerprints of invalid documents already logged: said once per process, not at every
        poll (each is a dead letter, kept once, in the state)."""

    async def fetch_pending(self) -> AsyncIterator[Received]:
        after = None
        # Pages, not one long cursor: a dropped connection costs one page, asked for again.
        while page := await self.store.unsynced_page(after, self.page):
            after = page[-1]["_id"]
            yield Received(document_json(page).encode())

    def parse(self, body: bytes) -> Page:
        entries: list[NewEntry] = []
        rejects: list[Rejected] = []
        for raw in document_from(body):
            payload = document_json(raw)
            digest = hashlib.sha256(payload.encode()).hexdigest()
            fingerprint = f"{raw['_id']}:{raw.get('updatedAt')}:{digest}"
            number = raw.get("number")
            key = str(number) if isinstance(number, int) else str(raw["_id"])
            try:
                TracosWorkOrder.model_validate(raw)
            except ValidationError as exc:
                # Not ours to repair or hide: it stays not synced, a dead letter, until fixed.
                reason = invalid_reason(raw, exc)
                rejects.append(Rejected(key, fingerprint, payload, reason))
                if fingerprint not in self._said:
                    self._said.add(fingerprint)
                    log.error("%s", reason)
                continue
            entries.append(NewEntry(key, "work order", fingerprint, payload))
        return Page(entries, rejects)
