"""Intempus cases and the local case store, kept in step both ways.

Two flows sharing one order (a case's two directions are applied one at a time): Intempus's
cases by logical timestamp, with full scans (``source.IntempusChanges``), and the case store's
change feed (``source.LocalChanges``), both into one sink (``sink.CaseSink``) that merges three
ways against the state both sides last agreed on (``mapping.merge``, ``links.Link``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ...connectors.case_store.client import CaseStoreClient
from ...connectors.intempus.client import IntempusClient
from ...core.clock import Clock
from ...core.flow import Flow
from ...core.http import mask_url
from ...core.journal import PageJournal
from ...core.state import StateStore
from ...core.sync import Runtime, Sync
from .clients import connect
from .commands import COMMANDS
from .settings import IntempusSettings
from .sink import CaseSink
from .source import INTEMPUS, LOCAL, ORDER, IntempusChanges, LocalChanges

__all__ = ["SYNC", "IntempusSettings", "assemble", "case_flows"]


def case_flows(
    intempus: IntempusClient,
    local: CaseStoreClient,
    store: StateStore,
    clock: Clock,
    settings: IntempusSettings,
    journals: dict[str, PageJournal] | None = None,
) -> list[Flow]:
    """Both directions into one sink, in one order."""
    sink = CaseSink(
        intempus,
        local,
        store,
        clock,
        policy=settings.conflict_policy,
        delete_fallback=settings.delete_fallback,
        match_by_number=settings.match_by_number,
    )
    journals = journals or {}
    return [
        Flow(
            IntempusChanges(
                intempus,
                store,
                clock,
                full_scan_interval=settings.full_scan_interval,
                max_delete_fraction=settings.max_delete_fraction,
            ),
            sink,
            journal=journals.get(INTEMPUS),
            order=ORDER,
        ),
        Flow(LocalChanges(local, store), sink, journal=journals.get(LOCAL), order=ORDER),
    ]


@asynccontextmanager
async def assemble(settings: IntempusSettings, runtime: Runtime) -> AsyncIterator[Sequence[Flow]]:
    journals = {
        name: PageJournal(f"{settings.state_db}.{name}.pages") for name in (INTEMPUS, LOCAL)
    }
    async with connect(settings, runtime.clock, runtime.stats) as (intempus, local):
        for journal in journals.values():
            journal.open()
        try:
            yield case_flows(intempus, local, runtime.store, runtime.clock, settings, journals)
        finally:
            for journal in journals.values():
                journal.close()


def describe(settings: IntempusSettings) -> str:
    return (
        f"Intempus {mask_url(str(settings.intempus_url))} as {settings.intempus_user}, "
        f"case store {mask_url(str(settings.case_store_url))}, conflicts won by "
        f"{settings.conflict_policy}"
    )


SYNC: Sync[IntempusSettings] = Sync(
    name="intempus",
    summary="Intempus cases and the local case store, both ways",
    settings=IntempusSettings,
    assemble=assemble,
    sources=(INTEMPUS, LOCAL),
    positions=(INTEMPUS, LOCAL),
    key_noun="case",
    describe=describe,
    commands=COMMANDS,
    dev_commands={
        "demo": "devtools.intempus.demo:command",
        "bench": "devtools.intempus.bench:command",
    },
)
