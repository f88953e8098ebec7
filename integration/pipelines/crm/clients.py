"""Each connection's connector, budget and writer, and our system's client, from the settings
and the connections file: one HTTP session for them all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from ...connectors.crm.base import Connector, UnlimitedBudget
from ...connectors.crm.budget import ConnectionBudget, local_budget, shared_budget
from ...connectors.crm.hubspot import HubSpotConnector
from ...connectors.crm.internal import InternalClient
from ...connectors.crm.pipedrive import PipedriveConnector
from ...connectors.crm.salesforce import SalesforceConnector
from ...core.clock import Clock, SystemClock
from ...core.http import HttpService
from ...core.stats import Stats
from .connections import Connection, ConnectionsFile
from .settings import CrmSettings
from .writes import Writer

CONNECTORS: dict[str, type[HubSpotConnector | SalesforceConnector | PipedriveConnector]] = {
    "hubspot": HubSpotConnector,
    "salesforce": SalesforceConnector,
    "pipedrive": PipedriveConnector,
}


@dataclass
class Wired:
    connection: Connection
    connector: Connector
    budget: ConnectionBudget
    writer: Writer


def build_connector(connection: Connection, http: HttpService) -> Connector:
    """The connection's connector with the account's limits; a limit it does not take is a
    configuration error naming it."""
    cls = CONNECTORS[connection.provider]
    try:
        connector: Connector = cls(http, UnlimitedBudget(), **connection.limits)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(f"connection {connection.name}: limits: {exc}") from None
    return connector


@asynccontextmanager
async def connect(
    settings: CrmSettings,
    config: ConnectionsFile,
    clock: Clock | None = None,
    stats: Stats | None = None,
    store: object | None = None,
) -> AsyncIterator[tuple[InternalClient, list[Wired]]]:
    """``store``: the state store; a PostgreSQL one (several workers) holds the budgets, so
    that every worker spends from the same ones."""
    clock = clock or SystemClock()
    pool = aiohttp.TCPConnector(limit=(len(config.connections) + 1) * settings.max_in_flight + 4)
    async with aiohttp.ClientSession(connector=pool, raise_for_status=False) as session:

        def service(name: str, url: object, token: str | None = None) -> HttpService:
            return HttpService(
                name,
                str(url),
                session,
                max_in_flight=settings.max_in_flight,
                timeout=settings.http_timeout,
                clock=clock,
                observer=stats.observe_request if stats is not None else None,
                headers={"Authorization": f"Bearer {token}"} if token else None,
            )

        internal = InternalClient(service("internal", config.internal_url))
        wired = []
        for connection in config.connections:
            connector = build_connector(
                connection, service(connection.name, connection.url, connection.token())
            )
            budget: ConnectionBudget
            if store is not None and settings.state_url is not None:
                budget = await shared_budget(
                    connector.dimensions(),
                    store,
                    connection.name,
                    reserve=connection.reserve,
                    clock=clock,
                )
            else:
                budget = local_budget(
                    connector.dimensions(), reserve=connection.reserve, clock=clock
                )
            connector.budget = budget  # type: ignore[attr-defined]
            writer = Writer(
                connector, clock, linger=settings.batch_linger, batch=connection.batch_writes
            )
            wired.append(Wired(connection, connector, budget, writer))
        yield internal, wired
