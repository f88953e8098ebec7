"""A scripted world for the CRM sync: our internal system and the three provider stand-ins, each a
real server on a real socket with a live clock, people editing every side through the stand-ins'
own user routes, and the sync drained against them (``drain``) as ``python run.py crm --once``
would run it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from crm_internal import CrmInternalSettings
from crm_internal import create_app as internal_app
from crm_providers.hubspot import HubSpotSettings
from crm_providers.hubspot import create_app as hubspot_app
from crm_providers.pipedrive import PipedriveSettings
from crm_providers.pipedrive import create_app as pipedrive_app
from crm_providers.salesforce import SalesforceSettings
from crm_providers.salesforce import create_app as salesforce_app
from integration.core.engine import Engine
from integration.core.serving import serve_app
from integration.core.shell import open_engine
from integration.pipelines.crm import SYNC, CrmSettings
from tests.helpers.policies import FAST_RETRY

OBJECTS = {
    "hubspot": {"contact": "contacts", "company": "companies"},
    "salesforce": {"contact": "Contact", "company": "Account"},
    "pipedrive": {"contact": "persons", "company": "organizations"},
}
PROVIDERS = tuple(OBJECTS)


@dataclass
class World:
    session: aiohttp.ClientSession
    tmp: Path
    internal_url: str
    urls: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)
    """TOML lines added to a connection's table (mapping, rules, owners, limits)."""
    connected: tuple[str, ...] = PROVIDERS

    # -- the sync ----------------------------------------------------------------------------

    def connections_file(self) -> Path:
        lines = [f'internal_url = "{self.internal_url}"', ""]
        for name in self.connected:
            lines += [
                "[[connections]]",
                f'name = "{name}"',
                f'provider = "{name}"',
                f'url = "{self.urls[name]}"',
                self.extra.get(name, ""),
                "",
            ]
        path = self.tmp / "crm-connections.toml"
        path.write_text("\n".join(lines))
        return path

    def settings(self, **overrides: Any) -> CrmSettings:
        values: dict[str, Any] = {
            "state_db": self.tmp / "crm-state.db",
            "connections": self.connections_file(),
            "overlap": 2.0,
            "full_scan_interval": 3600.0,
            "batch_linger": 0.005,
        }
        values.update(overrides)
        return CrmSettings(**values)

    async def drain(self, **overrides: Any) -> Engine:
        async with open_engine(SYNC, self.settings(**overrides), retry=FAST_RETRY) as engine:
            async with asyncio.timeout(60):
                await engine.run(asyncio.Event(), once=True)
        return engine

    async def settle(self, rounds: int = 3, **overrides: Any) -> None:
        """Drain until a change made anywhere has travelled through our system to every side
        (a provider's change reaches the others on the next pass)."""
        for _ in range(rounds):
            await asyncio.sleep(1.05)  # past the providers' one-second modified times
            await self.drain(**overrides)

    # -- people at a provider ----------------------------------------------------------------

    async def _call(self, method: str, url: str, body: Any = None, **kw: Any) -> Any:
        async with self.session.request(method, url, json=body, **kw) as response:
            raw = await response.read()
            assert response.status < 300, (method, url, response.status, raw[:300])
            return json.loads(raw) if raw else None

    async def user_creates(self, provider: str, obj: str, **fields: Any) -> str:
        url = f"{self.urls[provider]}/_standin/users/{OBJECTS[provider][obj]}"
        return str((await self._call("POST", url, {"fields": fields}))["id"])

    async def user_edits(self, provider: str, obj: str, record_id: str, **fields: Any) -> None:
        url = f"{self.urls[provider]}/_standin/users/{OBJECTS[provider][obj]}/{record_id}"
        await self._call("PATCH", url, {"fields": fields})

    async def user_deletes(self, provider: str, obj: str, record_id: str) -> None:
        url = f"{self.urls[provider]}/_standin/users/{OBJECTS[provider][obj]}/{record_id}"
        await self._call("DELETE", url)

    async def records(self, provider: str, obj: str, *, deleted: bool = False) -> list[Any]:
        """The provider's truth: its records of ``obj`` (live ones unless ``deleted``)."""
        native = OBJECTS[provider][obj]
        dump = await self._call("GET", f"{self.urls[provider]}/_standin/records?object={native}")
        rows = dump["objects"][native]
        return [r for r in rows if deleted or not r["deleted"]]

    async def stats(self, provider: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"{self.urls[provider]}/_standin/stats"))

    async def reset_stats(self) -> None:
        for provider in self.connected:
            await self._call("POST", f"{self.urls[provider]}/_standin/stats/reset")

    # -- people in our system ----------------------------------------------------------------

    async def ours_create(self, obj: str, **fields: Any) -> dict[str, Any]:
        route = "contacts" if obj == "contact" else "companies"
        return dict(await self._call("POST", f"{self.internal_url}/{route}/", fields))

    async def ours_edit(self, obj: str, our_id: int, **fields: Any) -> dict[str, Any]:
        route = "contacts" if obj == "contact" else "companies"
        return dict(await self._call("PATCH", f"{self.internal_url}/{route}/{our_id}", fields))

    async def ours_delete(self, obj: str, our_id: int) -> None:
        route = "contacts" if obj == "contact" else "companies"
        await self._call("DELETE", f"{self.internal_url}/{route}/{our_id}")

    async def ours(self, obj: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        route = "contacts" if obj == "contact" else "companies"
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            extra = "&include_deleted=true" if deleted else ""
            page = await self._call(
                "GET", f"{self.internal_url}/{route}/?after_id={after}&limit=500{extra}"
            )
            rows += page["items"]
            if page["next_after_id"] is None:
                return rows
            after = page["next_after_id"]


@contextlib.asynccontextmanager
async def world(tmp: Path, **provider_settings: dict[str, Any]) -> AsyncIterator[World]:
    """Every side served on a live clock; ``provider_settings`` per provider (limits, faults)."""
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        internal = await stack.enter_async_context(
            serve_app(internal_app(CrmInternalSettings(db=str(tmp / "ours.db"))))
        )
        makers: dict[str, tuple[Any, Any]] = {
            "hubspot": (hubspot_app, HubSpotSettings),
            "salesforce": (salesforce_app, SalesforceSettings),
            "pipedrive": (pipedrive_app, PipedriveSettings),
        }
        urls = {}
        for name, (make, settings_cls) in makers.items():
            settings = settings_cls.model_validate(provider_settings.get(name, {}))
            served = await stack.enter_async_context(serve_app(make(settings)))
            urls[name] = served.url
        yield World(session, tmp, internal.url, urls)
