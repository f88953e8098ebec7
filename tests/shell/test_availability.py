"""A service that stops answering is reported once when it goes and once when it comes back, not
once per retry: the per-call retry lines are DEBUG."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from integration.core.availability import DOWN_AFTER_SECONDS
from integration.core.serving import serve_app
from integration.core.shell import open_engine
from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings
from tests.helpers.cli import free_port
from tests.helpers.policies import FAST_RETRY

from .conftest import Ops, eventually, running


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def test_ourapi_down_for_a_few_seconds_is_one_warning_and_one_info_line(
    ops: Ops, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    async with ops.bigchat() as bigchat:
        settings = ops.settings(bigchat.url, ourapi_url=f"http://127.0.0.1:{port}")
        async with open_engine(BIGCHAT, settings, retry=FAST_RETRY) as engine, running(engine):

            async def reported_down() -> bool:
                return bool(_messages(caplog, "is not answering"))

            await eventually(reported_down, within=DOWN_AFTER_SECONDS + 10)
            app = create_ourapi(OurApiSettings(db=str(ops.tmp / "ourapi.db"), seed=3))
            async with serve_app(app, port=port):

                async def applied() -> bool:
                    return engine.stats.applied > 0

                await eventually(applied, within=15)
                # What was said up to here is the outage under test. OurAPI leaves when this block
                # exits while the engine is still stopping; a slow stop (a loaded machine) would
                # report that second, genuine outage too.
                said = list(caplog.records)

    down = [r for r in said if "is not answering" in r.getMessage()]
    back = [r for r in said if "is answering again" in r.getMessage()]
    assert [r.levelno for r in down] == [logging.WARNING]
    assert [r.levelno for r in back] == [logging.INFO]
    assert f"OurAPI (http://127.0.0.1:{port}) is not answering: cannot connect (connection " in (
        down[0].getMessage()
    )
    assert "call(s) waiting, retrying" in down[0].getMessage()
    assert "OurAPI is answering again after" in back[0].getMessage()
    retries = [r for r in said if "retrying in" in r.getMessage()]
    assert retries, "the worker did retry"
    assert {r.levelno for r in retries} == {logging.DEBUG}


async def test_a_single_server_error_is_not_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    from integration.core.availability import Availability

    caplog.set_level(logging.DEBUG, logger="integration.availability")
    service = Availability("BigChat", "http://127.0.0.1:1")
    for _ in range(5):
        service.failed("answers 503")
        service.answered()
    assert not service.down
    assert caplog.records == []


async def test_polls_failing_in_a_row_are_one_warning_and_one_line_when_polling_works_again(
    ops: Ops, caplog: pytest.LogCaptureFixture
) -> None:
    from integration.connectors.bigchat.client import BigChatClient
    from integration.connectors.ourapi.client import OurApiClient
    from integration.core.clock import SystemClock
    from integration.core.engine import Engine, EngineSettings
    from integration.core.http import HttpService
    from integration.core.retry import RetryPolicy
    from integration.core.store import SQLiteStore
    from integration.pipelines.bigchat_ourapi import bigchat_flow

    caplog.set_level(logging.DEBUG)
    await ops.start_ourapi()
    port = free_port()
    few = RetryPolicy(base=0.01, max_delay=0.02, max_tries=2)
    clock = SystemClock()
    store = SQLiteStore(ops.tmp / "state.db", clock=clock)
    await store.open()
    try:
        async with aiohttp.ClientSession() as session:
            pipeline = bigchat_flow(
                BigChatClient(
                    HttpService("bigchat", f"http://127.0.0.1:{port}", session), page_retry=few
                ),
                OurApiClient(HttpService("ourapi", ops.ourapi_url, session)),
                store,
                clock,
                recover_retry=few,
            )
            settings = EngineSettings(
                poll_interval=0.05, lag=0, start_at=ops.epoch, shutdown_grace=0.5, retry=FAST_RETRY
            )
            engine = Engine(pipeline, store, clock, settings)
            async with running(engine):

                async def failed_often() -> bool:
                    return engine.stats.poll_failures >= 5

                await eventually(failed_often, within=20)
                async with ops.bigchat(port=port):

                    async def polled() -> bool:
                        return engine.stats.windows > 0

                    await eventually(polled, within=20)
    finally:
        await store.close()

    failed = _messages(caplog, "poll failed")
    assert len(failed) >= 5
    assert [r.levelno for r in failed if r.levelno > logging.DEBUG] == [logging.WARNING]
    assert failed[0].levelno == logging.WARNING
    again = _messages(caplog, "polling again after")
    assert [r.levelno for r in again] == [logging.INFO]


async def test_at_start_up_each_service_is_said_to_answer_or_not_and_the_start_goes_on(
    ops: Ops, caplog: pytest.LogCaptureFixture
) -> None:
    from integration.pipelines.bigchat_ourapi.commands import announce_services

    caplog.set_level(logging.INFO, logger="integration")
    port = free_port()
    async with ops.bigchat() as bigchat:
        await announce_services(ops.settings(bigchat.url, ourapi_url=f"http://127.0.0.1:{port}"))
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2
    assert lines[0][0] == logging.INFO
    assert lines[0][1].startswith(f"BigChat ({bigchat.url}) answers (GET /advisors/1: 200 in ")
    assert lines[1] == (
        logging.WARNING,
        f"OurAPI (http://127.0.0.1:{port}) is not answering: cannot connect (connection "
        "refused); starting anyway, retrying until it does",
    )
