"""Fixtures: the real Intempus and case-store stand-ins over real sockets (the stand-ins' own
fixtures, shared), and the two connectors pointed at them through ``HttpService``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.connectors.case_store.client import CaseStoreClient
from integration.connectors.intempus.budget import RateBudget
from integration.connectors.intempus.client import IntempusClient
from integration.core.engine import Engine
from integration.core.http import HttpService
from integration.core.shell import open_engine
from integration.pipelines.intempus_cases import SYNC, IntempusSettings
from tests.case_store.conftest import StartStore, Store, start_store, store
from tests.helpers.policies import FAST_RETRY
from tests.intempus_standin.conftest import (
    KEY,
    USER,
    Intempus,
    StartIntempus,
    intempus,
    start_intempus,
)

__all__ = ["intempus", "start_intempus", "start_store", "store"]


class SteppingClock:
    """A clock whose ``sleep`` moves time on by exactly what was asked, at once; every sleep is
    recorded. The budget's waits are then checked in virtual time, without waiting."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.at += seconds
        await asyncio.sleep(0)


def intempus_client(
    intempus: Intempus, *, key: str = KEY, budget: RateBudget | None = None
) -> IntempusClient:
    http = HttpService("intempus", intempus.url, intempus.session, timeout=5.0)
    return IntempusClient(
        http,
        user=USER,
        api_key=key,
        budget=budget or RateBudget(clock=SteppingClock(intempus.clock.at)),
    )


def store_client(store: Store) -> CaseStoreClient:
    return CaseStoreClient(HttpService("case_store", store.url, store.session, timeout=5.0))


# -- the sync against both stand-ins --------------------------------------------------------


@dataclass
class Sides:
    """Both stand-ins and the sync's settings pointed at them; ``drain`` runs the sync once."""

    intempus: Intempus
    store: Store
    settings: IntempusSettings

    async def drain(self, **overrides: Any) -> Engine:
        settings = self.settings.model_copy(update=overrides)
        async with open_engine(SYNC, settings, retry=FAST_RETRY) as engine:
            async with asyncio.timeout(60):
                await engine.run(asyncio.Event(), once=True)
        return engine

    async def local_cases(self) -> list[dict[str, Any]]:
        answer = await self.store.call("GET", "/_standin/truth")
        return [row for row in answer.body["cases"] if not row["deleted"]]

    async def intempus_cases(self) -> list[dict[str, Any]]:
        return list((await self.intempus.truth()).values())

    async def user_edits_intempus(self, case_id: int, **fields: Any) -> None:
        answer = await self.intempus.call(
            "POST", f"/_standin/cases/{case_id}/touch", fields, headers={}
        )
        assert answer.status == 200, answer.raw

    async def user_edits_local(self, case_id: int, **fields: Any) -> dict[str, Any]:
        current = await self.store.call("GET", f"/cases/{case_id}")
        answer = await self.store.call(
            "PATCH", f"/cases/{case_id}", fields, {"If-Match": str(current.body["version"])}
        )
        assert answer.status == 200, answer.body
        return dict(answer.body)

    async def requests(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """What each stand-in served since the last reset: (Intempus's, the store's)."""
        i = await self.intempus.call("GET", "/_standin/stats", headers={})
        s = await self.store.call("GET", "/_standin/stats")
        return list(i.body["requests"]), list(s.body["requests"])

    async def reset_counts(self) -> None:
        await self.intempus.call("POST", "/_standin/stats/reset", headers={})
        await self.store.call("POST", "/_standin/stats/reset")


@pytest.fixture
async def sides(start_intempus: StartIntempus, start_store: StartStore, tmp_path: Path) -> Sides:
    intempus_standin = await start_intempus()
    store_standin = await start_store()
    settings = IntempusSettings(
        intempus_url=intempus_standin.url,
        intempus_user=USER,
        intempus_api_key=KEY,
        case_store_url=store_standin.url,
        state_db=tmp_path / "intempus-state.db",
        full_scan_interval=3600,
    )
    return Sides(intempus_standin, store_standin, settings)
