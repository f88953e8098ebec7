"""Fixtures: the case store served over a real socket, a real client and a manual clock (it
stamps rows and ages tombstones)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from case_store import SERVICE, CaseStoreSettings, Service, create_app
from tests.helpers.serving import ClockedStandin, start_clocked

START = 1_790_000_000.0
SYNC = {"X-Sync-Origin": "intempus-sync"}


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any


@dataclass
class Store(ClockedStandin):
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

    async def create(self, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        answer = await self.call(
            "POST", "/cases/", {"name": "A case", "customer": 6666940, **fields}, headers
        )
        assert answer.status == 201, answer.body
        return dict(answer.body)

    async def feed(self, after: int = 0, limit: int = 500) -> Answer:
        return await self.call("GET", f"/cases/changes?after={after}&limit={limit}")


StartStore = Callable[..., Awaitable[Store]]


@pytest.fixture
async def start_store(tmp_path: Path) -> AsyncIterator[StartStore]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(**settings: Any) -> Store:
            settings.setdefault("db", str(tmp_path / "case_store.db"))
            return await start_clocked(
                stack,
                Store,
                lambda clock, hook: create_app(
                    CaseStoreSettings(**settings), clock=clock, on_write_committed=hook
                ),
                START,
            )

        yield start


@pytest.fixture
async def store(start_store: StartStore) -> Store:
    return await start_store()
