"""``/healthz``: healthy while polls succeed and the state database takes writes; 503 with the
reason otherwise."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from integration.core.health import Probe, create_app, serve_health
from integration.core.metrics import EngineMetrics
from integration.core.serving import serve_app
from integration.core.shell import open_engine
from integration.core.stats import Stats
from integration.core.store import SQLiteStore
from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
from tests.helpers.clocks import ManualClock
from tests.helpers.policies import FAST_RETRY

from .conftest import Ops, eventually, get_health, running


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def serve_probe(probe: Probe) -> AsyncIterator[str]:
    metrics = EngineMetrics(probe.stats, probe.store, probe.clock, "bigchat")
    async with serve_app(create_app(probe, metrics)) as served:
        yield served.url


async def test_flips_to_503_while_bigchat_is_unreachable_and_back_to_200_after(
    ops: Ops, session: aiohttp.ClientSession
) -> None:
    await ops.start_ourapi()
    async with AsyncExitStack() as bigchat_up:
        bigchat = await bigchat_up.enter_async_context(ops.bigchat())
        settings = ops.settings(bigchat.url, poll_interval=0.5)
        async with (
            open_engine(BIGCHAT, settings, retry=FAST_RETRY) as engine,
            serve_health(engine) as health,
            running(engine),
        ):

            async def status_is(code: int) -> bool:
                return (await get_health(session, health.url))[0] == code

            async def polled() -> bool:
                return engine.stats.last_poll_ok_at is not None

            await eventually(polled, within=5)
            assert await status_is(200)

            await bigchat_up.aclose()  # BigChat goes away: every poll fails from now on
            gone = time.monotonic()
            await eventually(lambda: status_is(503), within=5)
            # Not before three poll intervals have passed without a successful poll.
            assert time.monotonic() - gone >= 3 * 0.5 - 1.0  # the last success preceded `gone`
            status, body = await get_health(session, health.url)
            assert status == 503
            assert body["status"] == "unhealthy"
            assert body["reasons"][0].startswith("no successful poll for ")
            assert "(limit 1.5 s)" in body["reasons"][0]

            async with ops.bigchat(port=bigchat.port):  # back, on the same address
                await eventually(lambda: status_is(200), within=10)
                status, body = await get_health(session, health.url)
                assert body["status"] == "ok"
                assert body["last_poll_error"] is None


async def test_names_the_last_poll_error_once_a_poll_has_failed(
    store: SQLiteStore, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock(1_000.0)
    stats = Stats(last_poll_ok_at=1_000.0)
    probe = Probe(stats, store, clock, poll_interval=10, started_at=900.0)
    async with serve_probe(probe) as url:
        clock.at = 1_045.0
        stats.last_poll_error = "bigchat GET /events: cannot connect (Connection refused)"
        status, body = await get_health(session, url)
    assert status == 503
    assert body["reasons"] == [
        "no successful poll for 45 s (limit 30 s): "
        "bigchat GET /events: cannot connect (Connection refused)"
    ]


async def test_counts_from_start_before_the_first_poll(
    store: SQLiteStore, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock(1_000.0)
    probe = Probe(Stats(), store, clock, poll_interval=10, started_at=1_000.0)
    async with serve_probe(probe) as url:
        clock.at = 1_029.0
        assert (await get_health(session, url))[0] == 200
        clock.at = 1_031.0
        status, body = await get_health(session, url)
    assert status == 503
    assert body["reasons"] == ["no successful poll since start for 31 s (limit 30 s)"]


async def test_a_worker_that_does_not_hold_the_poller_role_is_not_judged_by_polls(
    store: SQLiteStore, session: aiohttp.ClientSession
) -> None:
    # Several workers: only one polls; the others apply, and must not turn unhealthy for it.
    clock = ManualClock(1_000.0)
    stats = Stats(polling=False)
    probe = Probe(stats, store, clock, poll_interval=10, started_at=1_000.0)
    async with serve_probe(probe) as url:
        clock.at = 1_100.0
        status, body = await get_health(session, url)
        assert status == 200
        assert body["poller_role"] is False
        # It takes the role over: the three intervals count from then.
        stats.polling, stats.polling_since = True, 1_095.0
        assert (await get_health(session, url))[0] == 200
        clock.at = 1_126.0
        status, body = await get_health(session, url)
    assert status == 503
    assert body["reasons"] == ["no successful poll since start for 31 s (limit 30 s)"]


async def test_503_when_the_state_database_is_closed(
    store: SQLiteStore, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock(1_000.0)
    probe = Probe(Stats(last_poll_ok_at=1_000.0), store, clock, poll_interval=10, started_at=0)
    async with serve_probe(probe) as url:
        assert (await get_health(session, url))[0] == 200
        await store.close()
        status, body = await get_health(session, url)
    assert status == 503
    [reason] = body["reasons"]
    assert reason.startswith("state database not writable: StateError:")
    assert reason.endswith("the state store is not open")


async def test_503_when_the_state_database_does_not_commit_in_time(
    store: SQLiteStore, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock(1_000.0)
    probe = Probe(
        Stats(last_poll_ok_at=1_000.0), store, clock, poll_interval=10, started_at=0,
        write_timeout=0.3,
    )  # fmt: skip
    # Another process holds the database's write lock (as a stuck backup or a copy might).
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        async with serve_probe(probe) as url:
            status, body = await get_health(session, url)
        assert status == 503
        assert body["reasons"] == ["state database not writable: no commit within 0.3 s"]
    finally:
        other.execute("ROLLBACK")
        other.close()
