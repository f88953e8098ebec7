"""Inbound: ERP files -> TracOS. Each file is read, validated, translated and upserted by
``number``; then moved to ``processed/``, or to ``rejected/`` with its reason.

Applying a file twice (a crash after the upsert, before the move) changes nothing the second
time: an ERP change is applied only when strictly newer than the document, and the write is a
compare-and-set against the document as read, so a concurrent change is never overwritten
unseen.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ...connectors.erp_files.files import Candidate, FileRejected, Inbox, shown
from ...connectors.tracos.client import WorkOrderStore
from ...connectors.tracos.models import TracosChanges, as_utc
from ...core.errors import InvalidInput, PermanentError, TransientError
from .mapping import erp_is_newer, erp_to_tracos

log = logging.getLogger("integration.tracos.inbound")

MAX_RACES = 5
"""Compare-and-set attempts for one order before its file is left for the next pass."""


class Outcome(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    KEPT = "kept (TracOS is as new or newer)"


@dataclass
class InboundReport:
    applied: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    complete: bool = True
    """False when the pass stopped early (MongoDB unavailable, or asked to stop): the files not
    reached are still in the folder, for the next pass."""
    mongodb_down: bool = False


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
    raise PermanentError(
        f"order {changes.number} kept changing while being applied", blocking=False
    )


async def run_inbound(
    inbox: Inbox, store: WorkOrderStore, *, stopping: asyncio.Event | None = None
) -> InboundReport:
    report = InboundReport()
    try:
        candidates = await asyncio.to_thread(_scan, inbox)
    except OSError as exc:
        log.error("inbound folder unusable: %s", exc)
        return InboundReport(failed=1, complete=False)
    for candidate in candidates:
        if stopping is not None and stopping.is_set():
            report.complete = False
            break
        name = candidate.name
        try:
            if candidate.problem is not None:
                raise FileRejected(candidate.problem)
            changes = erp_to_tracos(await asyncio.to_thread(inbox.read, name))
        except FileNotFoundError:
            log.info("%s vanished before it was read", shown(name))
            continue
        except (FileRejected, InvalidInput) as exc:
            await _reject(inbox, name, str(exc), report)
            continue
        try:
            outcome = await upsert(store, changes)
        except TransientError as exc:
            log.error("%s left for the next pass: %s", shown(name), exc)
            report.failed += 1
            report.complete = False
            report.mongodb_down = True
            break  # MongoDB is gone: the other files would only wait for it in turn
        except PermanentError as exc:
            log.error("%s left for the next pass: %s", shown(name), exc)
            report.failed += 1
            continue
        try:
            await asyncio.to_thread(inbox.accept, name)
        except OSError as exc:
            # Applied but not moved: the next pass reads it again, and changes nothing.
            log.error("%s applied but not moved to processed/: %s", shown(name), exc)
            report.failed += 1
            continue
        if outcome is Outcome.KEPT:
            report.kept += 1
        else:
            report.applied += 1
        log.info("%s: order %d %s", shown(name), changes.number, outcome.value)
    return report


def _scan(inbox: Inbox) -> list[Candidate]:
    inbox.prepare()
    return inbox.scan()


async def _reject(inbox: Inbox, name: str, reason: str, report: InboundReport) -> None:
    try:
        await asyncio.to_thread(inbox.reject, name, reason)
    except FileNotFoundError:
        log.info("%s vanished before it was set aside", shown(name))
        return
    except OSError as exc:
        log.error("%s cannot be applied (%s) nor set aside: %s", shown(name), reason, exc)
        report.failed += 1
        return
    log.warning("%s rejected: %s", shown(name), reason)
    report.rejected += 1
