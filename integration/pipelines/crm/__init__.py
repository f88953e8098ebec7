"""Records both ways between our internal system and several CRM providers.

Per connection (a provider account, from the connections file), one flow per object reads the
provider's changes (``source.ProviderChanges``) and one reads our system's change feed
(``source.InternalChanges``); all of a connection's flows share one order (a record's entries are
applied one at a time, whichever side they come from) and one sink (``sink.CrmSink``), which maps,
merges, decides by the rules and writes. Connections are independent of each other: our system is
the hub, and a change made at one provider reaches the others through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ...connectors.crm.internal import InternalClient
from ...core.flow import Flow
from ...core.http import mask_url
from ...core.stats import Gauge
from ...core.sync import Runtime, Sync
from .clients import Wired, connect
from .commands import COMMANDS
from .connections import ConnectionsFile, load
from .settings import CrmSettings
from .sink import CrmSink
from .source import InternalChanges, ProviderChanges

__all__ = ["SYNC", "CrmSettings", "assemble", "crm_flows"]


def crm_flows(
    settings: CrmSettings, runtime: Runtime, internal: InternalClient, wired: Sequence[Wired]
) -> list[Flow]:
    flows: list[Flow] = []
    sinks: list[CrmSink] = []
    for each in wired:
        connection = each.connection
        sink = CrmSink(
            connection,
            each.connector,
            internal,
            runtime.store,
            runtime.clock,
            writer=each.writer,
            breaker_hops=settings.breaker_hops,
            breaker_window=settings.breaker_window,
            # A request sent by a worker that died can land until its timeout has passed.
            create_horizon=settings.http_timeout + 5.0,
        )
        sinks.append(sink)
        order = f"crm.{connection.name}"
        for obj in connection.objects:
            source = ProviderChanges(
                connection.name,
                obj,
                each.connector,
                runtime.store,
                runtime.clock,
                overlap=settings.overlap,
                full_scan_interval=settings.full_scan_interval,
            )
            flows.append(Flow(source, sink, order=order))
        flows.append(
            Flow(InternalChanges(connection.name, connection.objects, internal), sink, order=order)
        )
    _gauges(runtime, wired, sinks)
    return flows


def _gauges(runtime: Runtime, wired: Sequence[Wired], sinks: Sequence[CrmSink]) -> None:
    """Per connection, for ``/metrics``: the budget left on each limit, the seconds spent
    waiting for it, the provider's refusals, and what the sink did."""
    gauges = runtime.stats.gauges
    left = gauges.setdefault(
        "integration_crm_budget_remaining",
        Gauge(
            "Units of each provider limit the connection could spend now (its reserve left out).",
            ("connection", "dimension"),
        ),
    )
    waited = gauges.setdefault(
        "integration_crm_budget_waited_seconds",
        Gauge("Seconds spent waiting for the connection's budget, in all.", ("connection",)),
    )
    refused = gauges.setdefault(
        "integration_crm_provider_refusals",
        Gauge("Calls the provider refused for a limit (429/403), in all.", ("connection",)),
    )
    outcomes = gauges.setdefault(
        "integration_crm_outcomes",
        Gauge(
            "What the sync did with each connection's entries, by outcome (provider.create, "
            "internal.patch, echo, stale, rule.out.skip, quarantined...), in all.",
            ("connection", "outcome"),
        ),
    )

    async def refresh() -> None:
        for each in wired:
            name = each.connection.name
            for dimension, units in (await each.budget.remaining()).items():
                left.values[(name, dimension)] = units
            waited.values[(name,)] = each.budget.waited
            refused.values[(name,)] = each.budget.refusals
        for sink in sinks:
            for outcome, count in sink.counts.items():
                outcomes.values[(sink.name, outcome)] = count

    runtime.stats.refreshers.append(refresh)


@asynccontextmanager
async def assemble(settings: CrmSettings, runtime: Runtime) -> AsyncIterator[Sequence[Flow]]:
    config = load(settings.connections)
    async with connect(settings, config, runtime.clock, runtime.stats, runtime.store) as (
        internal,
        wired,
    ):
        yield crm_flows(settings, runtime, internal, wired)


def source_names(settings: CrmSettings) -> list[str]:
    config = load(settings.connections)
    return [
        *(f"{c.name}.{obj}" for c in config.connections for obj in c.objects),
        *(f"{c.name}.internal" for c in config.connections),
    ]


def positions(config: ConnectionsFile) -> list[str]:
    return [f"{c.name}.internal" for c in config.connections]


def describe(settings: CrmSettings) -> str:
    config = load(settings.connections)
    parts = ", ".join(f"{c.name} ({c.provider} {mask_url(str(c.url))})" for c in config.connections)
    return f"our system {mask_url(str(config.internal_url))}; connections: {parts}"


SYNC: Sync[CrmSettings] = Sync(
    name="crm",
    summary="records both ways between our system and several CRM providers",
    settings=CrmSettings,
    assemble=assemble,
    sources=source_names,
    key_noun="record",
    describe=describe,
    commands=COMMANDS,
    dev_commands={"demo": "devtools.crm.demo:command", "bench": "devtools.crm.bench:command"},
)
