"""The main sync: BigChat conversations into OurAPI chats, agents and messages.

One windowed flow: BigChat's ``/events`` in time windows (``source.py``) into OurAPI
(``sink.py``), over one set of conversation states (``state.py``). ``SYNC`` is what the process
shell runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp

from ...connectors.bigchat.client import BigChatClient
from ...connectors.ourapi.client import OurApiClient
from ...core.clock import Clock
from ...core.flow import Flow
from ...core.http import HttpService, mask_url
from ...core.journal import PageJournal
from ...core.retry import RetryPolicy
from ...core.state import StateStore
from ...core.sync import Runtime, Sync
from .commands import COMMANDS, announce_services
from .records import SOURCE
from .settings import BigChatOurApiSettings
from .sink import OurApiSink
from .source import BigChatSource
from .state import ConversationStates

__all__ = ["SYNC", "BigChatOurApiSettings", "assemble", "bigchat_flow"]


def bigchat_flow(
    bigchat: BigChatClient,
    ourapi: OurApiClient,
    store: StateStore,
    clock: Clock,
    *,
    journal: PageJournal | None = None,
    landing_horizon: float = 30.0,
    retention: float = 7 * 86400.0,
    probe_limit: int = 500,
    recover_concurrency: int = 8,
    recover_retry: RetryPolicy | None = None,
) -> Flow:
    """BigChat's source and OurAPI's sink over one set of conversation states."""
    states = ConversationStates(store)
    source = BigChatSource(
        bigchat,
        store,
        clock,
        states,
        retention=retention,
        probe_limit=probe_limit,
        recover_concurrency=recover_concurrency,
        recover_retry=recover_retry,
    )
    sink = OurApiSink(
        bigchat,
        ourapi,
        store,
        clock,
        states,
        inbox=source.name,
        landing_horizon=landing_horizon,
        history_retry=recover_retry,
    )
    return Flow(source, sink, journal=journal, prune=sink.prune, forget=sink.forget_cached)


@asynccontextmanager
async def assemble(
    settings: BigChatOurApiSettings, runtime: Runtime
) -> AsyncIterator[Sequence[Flow]]:
    """One HTTP session, a client per service, the pipeline, and the page journal beside the
    state file."""
    connector = aiohttp.TCPConnector(
        limit=settings.ourapi_max_in_flight + settings.bigchat_max_in_flight + 4
    )
    async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:

        def service(name: str, label: str, url: object, max_in_flight: int) -> HttpService:
            return HttpService(
                name,
                str(url),
                session,
                max_in_flight=max_in_flight,
                timeout=settings.http_timeout,
                clock=runtime.clock,
                observer=runtime.stats.observe_request,
                label=label,
            )

        bigchat = service(
            "bigchat", "BigChat", settings.bigchat_url, settings.bigchat_max_in_flight
        )
        ourapi = service("ourapi", "OurAPI", settings.ourapi_url, settings.ourapi_max_in_flight)
        journal = PageJournal(f"{settings.state_db}.pages")
        journal.open()
        try:
            yield [
                bigchat_flow(
                    BigChatClient(bigchat),
                    OurApiClient(ourapi),
                    runtime.store,
                    runtime.clock,
                    journal=journal,
                    landing_horizon=settings.ourapi_write_horizon,
                    retention=settings.retention,
                )
            ]
        finally:
            journal.close()


def describe(settings: BigChatOurApiSettings) -> str:
    return (
        f"BigChat {mask_url(str(settings.bigchat_url))}, "
        f"OurAPI {mask_url(str(settings.ourapi_url))}"
    )


SYNC: Sync[BigChatOurApiSettings] = Sync(
    name="bigchat",
    summary="BigChat's conversations into OurAPI's chats, agents and messages",
    settings=BigChatOurApiSettings,
    assemble=assemble,
    sources=(SOURCE,),
    key_noun="conversation",
    describe=describe,
    preflight=announce_services,
    commands=COMMANDS,
)
