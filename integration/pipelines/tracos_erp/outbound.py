"""Outbound: TracOS -> ERP files. Each work order not synced is translated, written atomically
as ``{number}.json``, and only then marked synced.

A crash between the write and the mark resends the file on the next pass (the ERP sees the
same order again, never a lost one). The mark is a compare-and-set against the document as it
was read: a document changed after the read stays not synced and goes out again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pydantic import ValidationError

from ...connectors.erp_files.files import Outbox
from ...connectors.tracos.client import WorkOrderStore
from ...connectors.tracos.models import TracosWorkOrder
from ...core.clock import Clock, utc
from ...core.errors import PermanentError, TransientError
from .mapping import tracos_to_erp

log = logging.getLogger("integration.tracos.outbound")

PAGE = 200


@dataclass
class OutboundReport:
    sent: int = 0
    resend: int = 0
    """Written, but the document changed meanwhile: it goes out again on the next pass."""
    invalid: int = 0
    failed: int = 0
    complete: bool = True


async def run_outbound(
    store: WorkOrderStore,
    outbox: Outbox,
    clock: Clock,
    *,
    stopping: asyncio.Event | None = None,
) -> OutboundReport:
    report = OutboundReport()
    try:
        await asyncio.to_thread(outbox.prepare)
    except OSError as exc:
        log.error("outbound folder unusable: %s", exc)
        return OutboundReport(failed=1, complete=False)
    after = None
    try:
        while page := await store.unsynced_page(after, PAGE):
            for raw in page:
                if stopping is not None and stopping.is_set():
                    report.complete = False
                    return report
                after = raw["_id"]
                await _send(raw, store, outbox, clock, report)
    except TransientError as exc:
        log.error("outbound stopped until the next pass: %s", exc)
        report.failed += 1
        report.complete = False
    return report


async def _send(
    raw: dict[str, object],
    store: WorkOrderStore,
    outbox: Outbox,
    clock: Clock,
    report: OutboundReport,
) -> None:
    try:
        doc = TracosWorkOrder.model_validate(raw)
    except ValidationError as exc:
        # Not ours to repair or hide: it stays not synced, said once per pass, until fixed.
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        log.error(
            "work order %s (_id %s) not sent: %s: %s",
            raw.get("number"),
            raw["_id"],
            where,
            err["msg"],
        )
        report.invalid += 1
        return
    try:
        path = await asyncio.to_thread(outbox.write, tracos_to_erp(doc))
    except OSError as exc:
        log.error("order %d not sent: cannot write its file: %s", doc.number, exc)
        report.failed += 1
        return
    try:
        marked = await store.mark_synced(raw, utc(clock.now()))
    except PermanentError as exc:
        log.error(
            "order %d sent but not marked synced (it will be sent again): %s", doc.number, exc
        )
        report.failed += 1
        return
    if marked:
        report.sent += 1
        log.info("order %d sent as %s", doc.number, path.name)
    else:
        report.resend += 1
        log.info("order %d changed while being sent; it goes out again next pass", doc.number)
