"""What the TracOS sync writes: ERP files into TracOS, and TracOS's work orders out as files.

Each sink applies one inbox entry at a time, and is what takes the item out of its source: a
file is moved to ``processed/`` (or ``rejected/``, beside its reason) once applied, a document
is marked synced once written. Applying an entry again (after a crash between the effect and
that last step) changes nothing the second time: an ERP change is applied only when strictly
newer than the document, a file written again is the same file, and every MongoDB write is a
compare-and-set against the document as read, so a concurrent change is never overwritten
unseen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError

from ...connectors.erp_files.files import FileRejected, Inbox, Outbox, parse_order, shown
from ...connectors.tracos.client import WorkOrderStore
from ...connectors.tracos.models import TracosChanges, TracosWorkOrder, as_utc
from ...core.clock import Clock, utc
from ...core.errors import InvalidInput, PermanentError, TransientError
from ...core.store import InboxEntry
from .mapping import erp_is_newer, erp_to_tracos, tracos_to_erp
from .source import document_from, file_content, file_identity, invalid_reason

log = logging.getLogger("integration.tracos")

MAX_RACES = 5
"""Compare-and-set attempts for one order before the engine is asked to retry it later."""


class Outcome(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    KEPT = "kept (TracOS is as new or newer)"


async def upsert(store: WorkOrderStore, changes: TracosChanges) -> Outcome:
    """Upsert by ``number``, newer side wins by update time."""
    for _ in range(MAX_RACES):
        current = await store.find_by_number(changes.number)
        if current is None:
            if await store.insert(changes):
                return Outcome.INSERTED
            continue  # inserted by someone else meanwhile: compare with theirs
        theirs = as_utc(current.get("updatedAt"))
        # A document without a readable updatedAt cannot claim to be newer.
        if isinstance(theirs, datetime) and not erp_is_newer(changes.updatedAt, theirs):
            return Outcome.KEPT
        if await store.update_if_unchanged(current, changes):
            return Outcome.UPDATED
    # A race, not a fault: the engine tries the entry again after a pause.
    raise TransientError(f"order {changes.number} kept changing while being applied")


class TracosWriter:
    """Applies the inbound folder's entries: upserts the file's work order in TracOS, then moves
    the file to ``processed/``; a file that is no work order goes to ``rejected/`` with its
    reason, and is a dead letter that blocks nothing."""

    def __init__(self, store: WorkOrderStore, inbox: Inbox) -> None:
        self.store = store
        self.inbox = inbox
        self._indexed = False

    async def apply(self, entry: InboxEntry) -> None:
        record = json.loads(entry.payload)
        name, identity = str(record["name"]), str(record["file"])
        try:
            if "problem" in record:
                raise FileRejected(record["problem"])
            changes = erp_to_tracos(parse_order(file_content(record)))
        except (FileRejected, InvalidInput) as exc:
            await self._set_aside(name, identity, str(exc))
            return
        if not self._indexed:
            # Once, before the first write (MongoDB may not answer at start-up: then this
            # entry waits, retried, like any other write).
            await self.store.ensure_indexes()
            self._indexed = True
        outcome = await upsert(self.store, changes)
        await self._move(name, identity, self.inbox.accept, "processed/")
        log.info("%s: order %d %s", shown(name), changes.number, outcome.value)

    async def _set_aside(self, name: str, identity: str, reason: str) -> None:
        def reject(folder_name: str) -> Path:
            return self.inbox.reject(folder_name, reason)

        if not await self._move(name, identity, reject, "rejected/"):
            return  # the ERP took it back: nothing to set aside, nothing to tell
        # INFO: the dead letter that follows is the warning.
        log.info("%s rejected: %s", shown(name), reason)
        raise PermanentError(reason, blocking=False)

    async def _move(
        self, name: str, identity: str, move: Callable[[str], Path], where: str
    ) -> bool:
        """Move the entry's file out of the folder; False when it is no longer there (moved
        by an earlier attempt that crashed before it was recorded, or taken back by the ERP).
        A file of the same name that is another file (sent since) is left for its own entry."""

        def run() -> bool:
            try:
                if file_identity(os.lstat(self.inbox.folder / name)) != identity:
                    return False
                move(name)
            except FileNotFoundError:
                return False
            return True

        try:
            moved = await asyncio.to_thread(run)
        except OSError as exc:
            # Not a file's fault and not worth a blind retry (a permission, a full disk): a
            # dead letter says so, and the file is applied again, harmlessly, when retried.
            raise PermanentError(f"cannot move {shown(name)} to {where}: {exc}") from None
        if not moved:
            log.info("%s is no longer in the folder; nothing to move", shown(name))
        return moved


async def prepare_outbox(outbox: Outbox) -> None:
    """At start-up: create the outbound folder and remove what a crash left half-written. A
    folder that cannot be prepared is said here; each write into it then fails with its reason."""
    try:
        await asyncio.to_thread(outbox.prepare)
    except OSError as exc:
        log.error("outbound folder unusable: %s", exc)


class ErpFilesWriter:
    """Applies TracOS's work orders not synced: writes ``{number}.json`` atomically, then marks
    the document synced, unless it changed since it was listed: it then stays not synced and
    is listed again, as a new entry, at the next poll."""

    def __init__(self, store: WorkOrderStore, outbox: Outbox, clock: Clock) -> None:
        self.store = store
        self.outbox = outbox
        self.clock = clock

    async def apply(self, entry: InboxEntry) -> None:
        raw = document_from(entry.payload)
        try:
            doc = TracosWorkOrder.model_validate(raw)
        except ValidationError as exc:  # listed valid; a dead letter put back by hand, say
            raise PermanentError(invalid_reason(raw, exc), blocking=False) from None
        order = tracos_to_erp(doc)

        def write() -> Path:
            self.outbox.folder.mkdir(parents=True, exist_ok=True)
            return self.outbox.write(order)

        try:
            path = await asyncio.to_thread(write)
        except OSError as exc:
            reason = f"order {doc.number} not sent: cannot write its file: {exc}"
            raise PermanentError(reason) from None
        if await self.store.mark_synced(raw, utc(self.clock.now())):
            log.info("order %d sent as %s", doc.number, path.name)
        else:
            # A crash before this entry was recorded as applied can also land here: the
            # document is marked already. Either way nothing more is due for this version.
            log.info(
                "order %d written but not marked synced: it changed since it was listed, and "
                "goes out again at the next poll",
                doc.number,
            )
