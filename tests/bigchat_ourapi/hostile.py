"""A BigChat that says whatever a test scripts: bad events, broken bodies, hostile links."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.ourapi.client import OurApiClient
from integration.core.engine import Engine
from integration.core.http import HttpService
from integration.core.retry import RetryPolicy
from integration.core.serving import serve_app
from integration.core.store import DeadLetter, SQLiteStore
from integration.pipelines.bigchat_ourapi import bigchat_flow
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings
from tests.helpers.clocks import ManualClock

from .scripted import scripted_settings

NOW = 2_000_000.0
T = 1_000_000  # when the scripted conversations happen


@dataclass
class Raw:
    """A page answered as is: status, body and content type."""

    body: str
    status: int = 200
    content_type: str = "application/json"


Page = list[dict[str, Any]] | Raw
"""A scripted page: events (served with the right nextPageUrl), or a raw answer."""


@dataclass
class Hostile:
    windows: list[list[Page]] = field(default_factory=list)
    histories: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    advisors: dict[int, int] = field(default_factory=dict)
    """conversation id -> its advisor (BigChat's /conversations/{id})."""
    known_advisors: set[int] = field(default_factory=lambda: {1, 2, 3})
    profiles: dict[int, tuple[str, str]] = field(default_factory=dict)
    """advisor id -> (name, e-mail) instead of the default ``Advisor n`` / ``an@example.com``."""
    next_page_url: dict[tuple[int, int], str] = field(default_factory=dict)
    """(window, page) -> a nextPageUrl to hand out instead of the right one."""
    requests: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    """The Authorization header of each /events request, in order."""

    base: float = 0.0
    """Start of the first scripted window: window n is asked for as [base + n, base + n + 1)."""

    def app(self) -> web.Application:
        async def events(request: web.Request) -> web.StreamResponse:
            self.requests.append(str(request.rel_url))
            self.authorizations.append(request.headers.get("Authorization"))
            start = datetime.fromisoformat(request.query["start_at"]).timestamp()
            index = int(start - self.base)
            page = int(request.query.get("page", "0"))
            pages = self.windows[index] if 0 <= index < len(self.windows) else [[]]
            spec = pages[page] if page < len(pages) else []
            if isinstance(spec, Raw):
                return web.Response(
                    text=spec.body, status=spec.status, content_type=spec.content_type
                )
            link = self.next_page_url.get((index, page))
            if link is None and page + 1 < len(pages):
                link = str(request.url.update_query(page=str(page + 1)))
            return web.json_response({"nextPageUrl": link, "events": spec})

        async def conversation(request: web.Request) -> web.Response:
            cid = int(request.match_info["id"])
            if cid not in self.histories:
                return web.json_response({"detail": "Conversation not found"}, status=404)
            return web.json_response(
                {
                    "conversation_id": cid,
                    "advisor_id": self.advisors.get(cid, 1),
                    "events": self.histories[cid],
                }
            )

        async def advisor(request: web.Request) -> web.Response:
            n = int(request.match_info["id"])
            if n not in self.known_advisors:
                return web.json_response({"detail": "Advisor not found"}, status=404)
            name, email = self.profiles.get(n, (f"Advisor {n}", f"a{n}@example.com"))
            return web.json_response({"advisor_id": n, "name": name, "email_address": email})

        app = web.Application()
        app.router.add_get("/events", events)
        app.router.add_get("/conversations/{id}", conversation)
        app.router.add_get("/advisors/{id}", advisor)
        return app


def conversation(
    cid: int, *messages: str, start: int = T, advisor: int = 1
) -> list[dict[str, Any]]:
    """A well-formed conversation: START, its messages a second apart, END."""
    events = [{"conversation_id": cid, "event_name": "START", "event_at": start, "data": None}]
    for n, text in enumerate(messages, start=1):
        events.append(
            {
                "conversation_id": cid,
                "event_name": "MESSAGE",
                "event_at": start + n,
                "data": {"message": text},
            }
        )
    events.append(
        {
            "conversation_id": cid,
            "event_name": "END",
            "event_at": start + len(messages) + 1,
            "data": None,
        }
    )
    return events


@dataclass
class Outcome:
    chats: dict[str, Any]
    """external_id -> (chat, [message texts])"""
    dead: list[DeadLetter]
    engine: Engine
    requests: list[str]
    cursor: float
    agents: dict[Any, str] = field(default_factory=dict)
    """OurAPI's agents: agent_id -> e-mail."""

    def texts(self, cid: int) -> list[str]:
        return self.chats[str(cid)][1] if str(cid) in self.chats else []

    def agent_email(self, cid: int) -> str | None:
        chat = self.chats[str(cid)][0]
        return self.agents.get(chat.agent_id) if chat.agent_id else None

    def reasons(self) -> Iterator[str]:
        return (d.reason for d in self.dead)


async def until_polls_failed(engine: Engine, store: SQLiteStore) -> None:
    """Run until BigChat (which never answers) failed three polls and nothing applicable is
    left; then stop the clean way."""
    stopping = asyncio.Event()
    task = asyncio.create_task(engine.run(stopping))
    try:
        async with asyncio.timeout(30):
            # Entries waiting behind a blocking dead letter do not count: they wait.
            while engine.stats.poll_failures < 3 or await store.pending("bigchat", 0, 1):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
    finally:
        stopping.set()
        await task


async def run_against(
    hostile: Hostile,
    folder: Path,
    *,
    ourapi_middleware: Any = None,
    stuck: bool = False,
    http_timeout: float = 5,
    bigchat_url: Callable[[str], str] = lambda url: url,
    before: Callable[[OurApiClient], Awaitable[None]] | None = None,
    pipeline_options: dict[str, Any] | None = None,
    settle: Callable[[], Awaitable[Any]] | None = None,
) -> Outcome:
    """Run the real engine and pipeline against ``hostile`` and the OurAPI stand-in until the
    cursor has passed every scripted window and nothing is pending, or, for a window that can
    never complete (``stuck``), until it has failed a few polls in a row.

    ``bigchat_url`` rewrites the served BigChat URL the worker is given (credentials, letter
    case); ``before`` prepares OurAPI (e.g. a chat that already exists) before the worker runs;
    ``settle`` is awaited after the worker stopped, before OurAPI is read (writes still landing).
    """
    count = len(hostile.windows)
    hostile.base = NOW - count - 1
    ourapi_app = create_ourapi(OurApiSettings(db=str(folder / "ourapi.db")))
    if ourapi_middleware is not None:
        ourapi_app.middlewares.append(ourapi_middleware)
    async with AsyncExitStack() as stack:
        bigchat = await stack.enter_async_context(serve_app(hostile.app()))
        ourapi = await stack.enter_async_context(serve_app(ourapi_app))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        store = SQLiteStore(folder / "state.db")
        await store.open()
        stack.push_async_callback(store.close)
        clock = ManualClock(NOW)
        fast = RetryPolicy(base=0.001, max_delay=0.005, max_tries=3)
        ourapi_client = OurApiClient(
            HttpService("ourapi", ourapi.url, session, timeout=http_timeout)
        )
        if before is not None:
            await before(ourapi_client)
        pipeline = bigchat_flow(
            BigChatClient(
                HttpService("bigchat", bigchat_url(bigchat.url), session, timeout=http_timeout),
                page_retry=fast,
            ),
            ourapi_client,
            store,
            clock,
            recover_retry=fast,
            **(pipeline_options or {}),
        )
        engine = Engine(
            pipeline,
            store,
            clock,
            scripted_settings(count, NOW, rescan_interval=0.05),
        )
        if not stuck:
            async with asyncio.timeout(30):
                await engine.run(asyncio.Event(), once=True)  # drain mode
        else:
            await until_polls_failed(engine, store)
        if settle is not None:
            await settle()
        chats = {}
        for chat in await ourapi_client.list_chats():
            messages = await ourapi_client.messages(chat.chat_id)
            chats[chat.external_id] = (chat, sorted(m.text for m in messages))
        cursor = await store.get_cursor("bigchat") or 0.0
        agents = {a.agent_id: a.email for a in await ourapi_client.find_agents()}
        return Outcome(chats, await store.dead_letters(), engine, hostile.requests, cursor, agents)
