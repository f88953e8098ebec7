"""TracOS work orders (MongoDB) <-> the ERP's JSON files, on the engine.

Two flows: the ERP's inbound folder into TracOS (``ErpInboundFiles`` -> ``TracosWriter``), and
TracOS's work orders not synced out to the ERP's outbound folder (``TracosUnsynced`` ->
``ErpFilesWriter``). Both sources are pending ones: what is not applied yet stays where it is
(the file in the folder, the document not synced) and is listed again at the next poll.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ...connectors.erp_files.files import Inbox, Outbox
from ...connectors.tracos.client import WorkOrderStore, redact
from ...core.clock import Clock
from ...core.flow import Flow
from ...core.sync import Runtime, Sync
from .commands import sample
from .settings import TracosSettings, unanswered, work_orders
from .sink import ErpFilesWriter, TracosWriter, prepare_outbox
from .source import ErpInboundFiles, TracosUnsynced

__all__ = [
    "SYNC",
    "ErpFilesWriter",
    "ErpInboundFiles",
    "TracosSettings",
    "TracosUnsynced",
    "TracosWriter",
    "assemble",
    "tracos_flows",
]

log = logging.getLogger("integration.tracos")


def tracos_flows(store: WorkOrderStore, inbox: Inbox, outbox: Outbox, clock: Clock) -> list[Flow]:
    """The sync's two flows over the given MongoDB collection and folders."""
    return [
        Flow(ErpInboundFiles(inbox), TracosWriter(store, inbox)),
        Flow(TracosUnsynced(store), ErpFilesWriter(store, outbox, clock)),
    ]


@asynccontextmanager
async def assemble(settings: TracosSettings, runtime: Runtime) -> AsyncIterator[Sequence[Flow]]:
    """The flows, over one MongoDB client (closed at the end). ``runtime.retry``, when set,
    also replaces how each MongoDB call is retried (tests make it fast)."""
    inbox = Inbox(settings.data_inbound_dir, max_bytes=settings.max_file_bytes, clock=runtime.clock)
    outbox = Outbox(settings.data_outbound_dir)
    async with work_orders(settings, runtime.retry) as store:
        await prepare_outbox(outbox)
        yield tracos_flows(store, inbox, outbox, runtime.clock)


def describe(settings: TracosSettings) -> str:
    return (
        f"MongoDB {settings.mongo_database}.{settings.mongo_collection} at "
        f"{redact(settings.mongo_uri)}, inbound {settings.data_inbound_dir}, "
        f"outbound {settings.data_outbound_dir}"
    )


async def preflight(settings: TracosSettings) -> str | None:
    """Whether MongoDB answers (one ping, within MONGO_TIMEOUT): None, or one line naming
    MONGO_URI."""
    async with work_orders(settings) as store:
        return await unanswered(store)


SYNC: Sync[TracosSettings] = Sync(
    name="tracos",
    summary="TracOS work orders (MongoDB) <-> ERP JSON files",
    settings=TracosSettings,
    assemble=assemble,
    sources=(ErpInboundFiles.name, TracosUnsynced.name),
    key_noun="work order",
    describe=describe,
    preflight=preflight,
    commands=[sample],
)
