"""Fixtures: our internal system served over a real socket, a raw caller and the worker's own
client against it, with a manual clock (it stamps rows)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crm_internal import SERVICE, CrmInternalSettings, Service, create_app
from integration.connectors.crm.internal import InternalClient
from integration.core.http import HttpService
from tests.helpers.serving import ClockedStandin, start_clocked

START = 1_790_000_000.0
SYNC = {"X-Sync-Origin": "crm:hubspot-main"}


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any


@dataclass
class Internal(ClockedStandin):
    @property
    def service(self) -> Service:
        return self.app[SERVICE]

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        data = None if body is None else json.dumps(body)
        sent = {"Content-Type": "application/json"} if body is not None else {}
        async with self.session.request(
            method, self.url + path, data=data, headers={**sent, **(headers or {})}
        ) as response:
            raw = await response.read()
            return Answer(response.status, response.headers, json.loads(raw) if raw else None)

    async def company(self, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        answer = await self.call("POST", "/companies/", {"name": "Acme ApS", **fields}, headers)
        assert answer.status == 201, answer.body
        return dict(answer.body)

    async def contact(self, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        answer = await self.call("POST", "/contacts/", {"last_name": "Hansen", **fields}, headers)
        assert answer.status == 201, answer.body
        return dict(answer.body)

    async def feed(self, after: int = 0, limit: int = 500) -> Answer:
        return await self.call("GET", f"/changes?after={after}&limit={limit}")

    async def records(self) -> dict[str, Any]:
        return dict((await self.call("GET", "/_standin/records")).body)


StartInternal = Callable[..., Awaitable[Internal]]


@pytest.fixture
async def start_internal(tmp_path: Path) -> AsyncIterator[StartInternal]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(**settings: Any) -> Internal:
            settings.setdefault("db", str(tmp_path / "crm_internal.db"))
            return await start_clocked(
                stack,
                Internal,
                lambda clock, hook: create_app(
                    CrmInternalSettings(**settings), clock=clock, on_write_committed=hook
                ),
                START,
            )

        yield start


@pytest.fixture
async def internal(start_internal: StartInternal) -> Internal:
    return await start_internal()


@pytest.fixture
def client(internal: Internal) -> InternalClient:
    return InternalClient(HttpService("crm_internal", internal.url, internal.session, timeout=5.0))
