"""Fixtures: the Intempus stand-in served over a real socket, a real aiohttp client, and a manual
clock (the rate-limit window and creation_date read it; nothing here sleeps)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intempus import SERVICE, IntempusSettings, Service, create_app
from tests.helpers.serving import ClockedStandin, start_clocked

USER = "sync@example.com"
KEY = "secret-key"
AUTH = {"Authorization": f"ApiKey {USER}:{KEY}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()}
CUSTOMER = "/web/v1/customer/6666940/"
FIXTURES = Path(__file__).parent / "fixtures"
START = 1_790_000_000.0  # 2026-09-21, mid-day UTC


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass
class Answer:
    status: int
    headers: Any
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def lt(self) -> int:
        return int(self.headers["Logical-Timestamp"])


@dataclass
class Intempus(ClockedStandin):
    """One running stand-in: its service (store, switches, stats), URL, session and clock."""

    @property
    def service(self) -> Service:
        return self.app[SERVICE]

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        sent = AUTH if headers is None else headers
        data = None if body is None else json.dumps(body)
        extra = {"Content-Type": "application/json"} if body is not None else {}
        async with self.session.request(
            method, self.url + path, data=data, headers={**sent, **extra}
        ) as response:
            return Answer(response.status, response.headers, await response.read())

    async def create(self, **fields: Any) -> dict[str, Any]:
        answer = await self.call(
            "POST", "/web/v1/case/", {"name": "A case", "customer": CUSTOMER, **fields}
        )
        assert answer.status == 201, answer.raw
        return dict(answer.body)

    async def switch(self, **switches: Any) -> None:
        answer = await self.call("PATCH", "/_standin/faults", switches, headers={})
        assert answer.status == 200, answer.raw

    async def truth(self) -> dict[int, dict[str, Any]]:
        answer = await self.call("GET", "/_standin/truth", headers={})
        return {case["id"]: case for case in answer.body["cases"]}


StartIntempus = Callable[..., Awaitable[Intempus]]


@pytest.fixture
async def start_intempus(tmp_path: Path) -> AsyncIterator[StartIntempus]:
    """Start a stand-in with the given settings; rate limits are off unless a test sets them."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**settings: Any) -> Intempus:
            settings.setdefault("db", str(tmp_path / "intempus.db"))
            settings.setdefault("rate_per_minute", None)
            settings.setdefault("rate_per_day", None)
            return await start_clocked(
                stack,
                Intempus,
                lambda clock, hook: create_app(
                    IntempusSettings(**settings), clock=clock, on_write_committed=hook
                ),
                START,
            )

        yield start


@pytest.fixture
async def intempus(start_intempus: StartIntempus) -> Intempus:
    """A stand-in with its defaults (no sample cases, rate limits off)."""
    return await start_intempus()
