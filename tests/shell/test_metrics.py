"""``/metrics``: Prometheus text read from the engine's counters and its store at scrape time."""

from __future__ import annotations

import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from integration.core.health import serve_health
from integration.core.shell import open_engine
from integration.core.store import dumps
from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
from tests.helpers.cli import free_port
from tests.helpers.policies import FAST_RETRY

from .conftest import Ops, eventually, running, scrape, value


async def test_counters_rise_as_events_are_fetched_and_applied(
    ops: Ops, session: aiohttp.ClientSession
) -> None:
    await ops.start_ourapi()
    async with ops.bigchat() as bigchat:
        settings = ops.settings(bigchat.url)
        async with (
            open_engine(BIGCHAT, settings, retry=FAST_RETRY) as engine,
            serve_health(engine) as h,
        ):
            before = await scrape(session, h.url)
            async with running(engine):

                async def caught_up() -> bool:
                    status = await engine.store.status(engine.pipeline.name)
                    return engine.stats.applied > 0 and status.inbox["pending"] == 0

                await eventually(caught_up, within=15)
                after = await scrape(session, h.url)

    assert value(before, "integration_events_fetched_total") == 0
    assert value(before, "integration_events_applied_total") == 0
    assert ("integration_last_successful_poll_timestamp_seconds", frozenset()) not in before

    fetched = value(after, "integration_events_fetched_total")
    assert fetched > 0
    assert value(after, "integration_events_applied_total") > 0
    assert value(after, "integration_polls_total") >= 1
    assert value(after, "integration_http_requests_total", target="bigchat", method="GET",
                 status="200") > 0  # fmt: skip
    assert value(after, "integration_http_requests_total", target="ourapi", method="POST",
                 status="201") > 0  # fmt: skip
    assert value(after, "integration_backlog_events") == 0
    assert value(after, "integration_lag_seconds") == 0
    assert value(after, "integration_cursor_timestamp_seconds") > ops.epoch
    last_ok = value(after, "integration_last_successful_poll_timestamp_seconds")
    assert time.time() - 30 < last_ok <= time.time()


async def test_backlog_and_lag_grow_while_ourapi_is_unreachable(
    ops: Ops, session: aiohttp.ClientSession
) -> None:
    async with ops.bigchat() as bigchat:
        settings = ops.settings(bigchat.url, ourapi_url=f"http://127.0.0.1:{free_port()}")
        async with (
            open_engine(BIGCHAT, settings, retry=FAST_RETRY) as engine,
            serve_health(engine) as h,
            running(engine),
        ):

            async def retrying() -> bool:
                return engine.stats.windows > 0 and engine.stats.retries > 0

            await eventually(retrying, within=10)
            samples = await scrape(session, h.url)

    assert value(samples, "integration_events_fetched_total") > 0
    # Nothing could be applied, so everything fetched waits (a later window may be part-stored).
    assert value(samples, "integration_backlog_events") >= value(
        samples, "integration_events_fetched_total"
    )
    assert value(samples, "integration_events_applied_total") == 0
    # The oldest pending event occurred up to a minute ago (BigChat's history).
    assert 1 < value(samples, "integration_lag_seconds") < 120
    assert value(samples, "integration_retries_total") > 0
    assert value(samples, "integration_http_requests_total", target="ourapi", method="GET",
                 status="connect-error") + value(
        samples, "integration_http_requests_total", target="ourapi", method="POST",
        status="connect-error") > 0  # fmt: skip


async def test_every_metric_has_help_and_the_integration_prefix(
    ops: Ops, session: aiohttp.ClientSession
) -> None:
    async with ops.bigchat() as bigchat:
        settings = ops.settings(bigchat.url)
        async with open_engine(BIGCHAT, settings) as engine, serve_health(engine) as h:
            engine.stats.dead_by_reason["bad data"] += 2
            engine.stats.observe_request("bigchat", "GET", "timeout")
            engine.stats.cursor = 1_800_000_000.0
            async with session.get(f"{h.url}/metrics") as resp:
                text = await resp.text()

    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} >= {
        "integration_events_fetched",
        "integration_events_duplicate",
        "integration_events_applied",
        "integration_events_dead_lettered",
        "integration_http_requests",
        "integration_retries",
        "integration_poll_failures",
        "integration_lag_seconds",
        "integration_backlog_events",
        "integration_last_poll_duration_seconds",
        "integration_cursor_timestamp_seconds",
    }
    for family in families:
        assert family.name.startswith("integration_"), family.name
        assert len(family.documentation) > 20, family.name
    samples = {(s.name, dumps(s.labels)): s.value for f in families for s in f.samples}
    assert samples[("integration_events_dead_lettered_total", dumps({"reason": "bad data"}))] == 2
