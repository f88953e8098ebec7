"""One pass (inbound, then outbound) and the poll loop around it, and their assembly from
settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ...connectors.erp_files.files import Inbox, Outbox
from ...connectors.tracos.client import WorkOrderStore, connect
from ...core.clock import Clock, SystemClock
from ...core.errors import PermanentError, TransientError
from ...core.retry import RetryPolicy
from .inbound import InboundReport, run_inbound
from .outbound import OutboundReport, run_outbound
from .settings import TracosSettings

log = logging.getLogger("integration.tracos")


@dataclass(frozen=True)
class TracosSync:
    store: WorkOrderStore
    inbox: Inbox
    outbox: Outbox
    clock: Clock


@dataclass(frozen=True)
class PassReport:
    inbound: InboundReport
    outbound: OutboundReport

    @property
    def ok(self) -> bool:
        """Every file and document handled or set aside: nothing failed, nothing left over."""
        return (
            self.inbound.failed == 0
            and self.outbound.failed == 0
            and self.outbound.invalid == 0
            and self.inbound.complete
            and self.outbound.complete
        )

    def summary(self) -> str:
        i, o = self.inbound, self.outbound
        return (
            f"inbound {i.applied} applied, {i.kept} kept, {i.rejected} rejected, "
            f"{i.failed} failed; outbound {o.sent} sent, {o.resend} to resend, "
            f"{o.invalid} invalid, {o.failed} failed"
        )


async def run_pass(sync: TracosSync, *, stopping: asyncio.Event | None = None) -> PassReport:
    try:
        await sync.store.ensure_indexes()
    except (TransientError, PermanentError) as exc:
        log.error("pass skipped: %s", exc)
        return PassReport(
            InboundReport(failed=1, complete=False, mongodb_down=True),
            OutboundReport(complete=False),
        )
    inbound = await run_inbound(sync.inbox, sync.store, stopping=stopping)
    if inbound.mongodb_down or (stopping is not None and stopping.is_set()):
        # Outbound would only wait for MongoDB again, or delay the stop asked for.
        outbound = OutboundReport(complete=False)
    else:
        outbound = await run_outbound(sync.store, sync.outbox, sync.clock, stopping=stopping)
    report = PassReport(inbound, outbound)
    log.log(logging.INFO if report.ok else logging.WARNING, "pass: %s", report.summary())
    return report


async def run_forever(
    sync: TracosSync, interval: float, stopping: asyncio.Event, *, grace: float = 5.0
) -> None:
    """Passes every ``interval`` seconds until ``stopping`` is set. A pass that fails leaves its
    work in place (files in the folder, documents not synced) for the next one.

    A stop asked mid-pass lets the pass finish the item in hand (it checks between items), for
    up to ``grace`` seconds; a pass still waiting after that (on MongoDB, say) is cancelled,
    which loses nothing: every step is safe to interrupt and redo.
    """
    while not stopping.is_set():
        current = asyncio.ensure_future(run_pass(sync, stopping=stopping))
        try:
            if not await _until_stopped(current, stopping):
                # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a second signal's
                # cancel when the pass ends at the same moment.
                await asyncio.wait({current}, timeout=grace)
                if not current.done():
                    log.warning("stop asked: pass cut short; the next run picks up from there")
                break
        finally:
            await _cancel(current)  # a no-op when it finished; on a second signal, stop it too
        nap = asyncio.ensure_future(sync.clock.sleep(interval))
        try:
            await _until_stopped(nap, stopping)
        finally:
            await _cancel(nap)


async def _until_stopped(work: asyncio.Future[Any], stopping: asyncio.Event) -> bool:
    """Wait for ``work`` or a stop, whichever comes first; whether ``work`` finished."""
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel(stop)
    if work.done():
        work.result()  # a pass that raised is a bug: let it be seen
        return True
    return False


async def _cancel(work: asyncio.Future[Any]) -> None:
    if not work.done():
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)


def retry_policy(settings: TracosSettings) -> RetryPolicy:
    return RetryPolicy(base=0.5, max_delay=30.0, max_tries=settings.mongo_max_tries)


@asynccontextmanager
async def tracos_sync(
    settings: TracosSettings, *, clock: Clock | None = None, retry: RetryPolicy | None = None
) -> AsyncIterator[TracosSync]:
    clock = clock or SystemClock()
    client = connect(settings.mongo_uri, timeout=settings.mongo_timeout)
    try:
        collection = client[settings.mongo_database][settings.mongo_collection]
        yield TracosSync(
            store=WorkOrderStore(collection, retry=retry or retry_policy(settings)),
            inbox=Inbox(settings.data_inbound_dir, max_bytes=settings.max_file_bytes, clock=clock),
            outbox=Outbox(settings.data_outbound_dir),
            clock=clock,
        )
    finally:
        await client.close()
