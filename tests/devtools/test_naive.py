"""The naive baseline is slow on purpose, never wrong: on a tiny frozen world, OurAPI ends up
holding exactly what BigChat's history says."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from big_chat.app import create_app as create_bigchat
from big_chat.settings import BigChatSettings
from devtools.bench.models import Applied
from devtools.bench.naive import NaiveSync
from devtools.bench.workload import build
from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.ourapi.client import OurApiClient
from integration.core.http import HttpService
from integration.core.serving import serve_app
from integration.pipelines.bigchat_ourapi.verify import verify
from our_api import OurApiSettings, create_app


async def test_naive_baseline_applies_every_event_correctly(tmp_path: Path) -> None:
    workload = build(80, page_size=25)
    bigchat_app = create_bigchat(
        BigChatSettings(
            seed=workload.seed,
            conversation_rate=workload.conversation_rate,
            epoch=workload.epoch,
            page_size=workload.page_size,
        ),
        clock=lambda: workload.frozen_at,
    )
    ourapi_app = create_app(OurApiSettings(db=str(tmp_path / "ourapi.db")))
    async with (
        serve_app(bigchat_app) as bigchat,
        serve_app(ourapi_app) as ourapi,
        aiohttp.ClientSession() as session,
    ):
        applied: list[Applied] = []
        await NaiveSync(session, bigchat.url, ourapi.url).run(workload.epoch, workload.end, applied)
        report = await verify(
            BigChatClient(HttpService("bigchat", bigchat.url, session)),
            OurApiClient(HttpService("ourapi", ourapi.url, session)),
            workload.conversation_ids,
        )

    assert len(applied) == workload.events
    assert report.conversations == workload.conversations
    assert report.ok, report.findings
