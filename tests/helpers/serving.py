"""Serving a stand-in's app on a real socket with a real client, for the length of a fixture."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from aiohttp import web

from integration.core.serving import serve_app
from tests.helpers.clocks import ManualClock


async def serve_with_session(
    stack: contextlib.AsyncExitStack, app: web.Application
) -> tuple[str, aiohttp.ClientSession]:
    """Serve ``app`` on 127.0.0.1 (a free port) until ``stack`` closes; its URL and a session
    (closed first: the stack unwinds in reverse)."""
    served = await stack.enter_async_context(serve_app(app))
    session = await stack.enter_async_context(aiohttp.ClientSession())
    return served.url, session


@dataclass
class ClockedStandin:
    """A stand-in served with a manual clock (it stamps rows; the test moves it), recording
    every write it reports committed as ``(op, case_id)``, in order."""

    app: web.Application
    url: str
    session: aiohttp.ClientSession
    clock: ManualClock
    committed: list[tuple[str, int]] = field(default_factory=list)


S = TypeVar("S", bound=ClockedStandin)
MakeApp = Callable[[Callable[[], float], Callable[[str, int], None]], web.Application]


async def start_clocked(
    stack: contextlib.AsyncExitStack, kind: type[S], make_app: MakeApp, at: float
) -> S:
    """Serve ``make_app(clock, on_write_committed)`` until ``stack`` closes, its clock at
    ``at``; the running stand-in as a ``kind``."""
    clock = ManualClock(at)
    committed: list[tuple[str, int]] = []
    app = make_app(clock.now, lambda op, case_id: committed.append((op, case_id)))
    url, session = await serve_with_session(stack, app)
    return kind(app, url, session, clock, committed)
