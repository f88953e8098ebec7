"""Fixtures: the OurAPI stand-in served over a real socket, with a real aiohttp client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from our_api import OurApiSettings, create_app
from tests.helpers.serving import serve_with_session


@dataclass
class Api:
    """One running stand-in: its app (for STATS/FAULTS), its URL and a client session."""

    app: web.Application
    url: str
    session: aiohttp.ClientSession

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.request(method, self.url + path, **kwargs)

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Status and decoded body (JSON if it is JSON, else text)."""
        async with self.request(method, path, **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def agent(self, name: str = "Alice Agent", email: str = "alice@example.com") -> str:
        status, body = await self.call("POST", "/agents", json={"name": name, "email": email})
        assert status == 201, body
        return str(body["agent_id"])

    async def chat(self, external_id: str = "1", **fields: Any) -> str:
        body = {"external_id": external_id, "started_at": "2024-05-01T03:00:00Z", **fields}
        status, answer = await self.call("POST", "/chats", json=body)
        assert status == 201, answer
        return str(answer["chat_id"])


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(tmp_path: Path) -> AsyncIterator[StartApi]:
    """Start a stand-in with the given settings (file db in tmp_path by default)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**settings: Any) -> Api:
            settings.setdefault("db", str(tmp_path / "our_api.db"))
            app = create_app(OurApiSettings(**settings))
            url, session = await serve_with_session(stack, app)
            return Api(app, url, session)

        yield start


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    """A stand-in with its defaults: no faults, a file database."""
    return await start_api()
