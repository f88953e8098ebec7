"""The page journal: what a killed worker had received is stored at the next start."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from integration.core.engine import Engine, EngineSettings
from integration.core.flow import Page, Received
from integration.core.journal import PageJournal
from integration.core.retry import RetryPolicy
from integration.core.store import InboxEntry, NewEntry, SQLiteStore
from tests.helpers.clocks import ManualClock


def test_records_come_back_in_order_and_a_cut_short_last_one_is_skipped(tmp_path: Path) -> None:
    journal = PageJournal(tmp_path / "state.db.pages")
    journal.open()
    journal.append(b"first")
    journal.append(b"second page")
    journal.close()
    with (tmp_path / "state.db.pages").open("ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x09half")  # a write the process never finished

    assert PageJournal(tmp_path / "state.db.pages").records() == [b"first", b"second page"]


def test_the_journal_is_private_and_cleared(tmp_path: Path) -> None:
    journal = PageJournal(tmp_path / "state.db.pages")
    journal.open()
    journal.append(b"page")
    journal.clear()

    assert journal.records() == []
    assert stat.S_IMODE(os.stat(tmp_path / "state.db.pages").st_mode) == 0o600
    journal.close()


class OnePage:
    name = "test"

    async def fetch(self, start: float, end: float) -> AsyncIterator[Received]:
        if False:
            yield Received(b"")

    def parse(self, body: bytes) -> Page:
        events = json.loads(body)["events"]
        return Page([NewEntry("k", "x", f"f{n}", str(n), 1.0) for n in events], [])

    async def apply(self, entry: InboxEntry) -> None:
        return None

    async def recover(self, reason: str, horizon: float) -> None:
        return None


async def test_pages_a_killed_worker_had_journaled_are_stored_at_the_next_start(
    tmp_path: Path,
) -> None:
    journal = PageJournal(tmp_path / "state.db.pages")
    journal.open()
    journal.append(json.dumps({"events": [1, 2, 3]}).encode())  # then the process died
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    settings = EngineSettings(poll_interval=10, retry=RetryPolicy(base=0.001, max_delay=0.01))
    engine = Engine(OnePage(), store, ManualClock(1_000.0), settings, journal=journal)
    stopping = asyncio.Event()
    task = asyncio.create_task(engine.run(stopping))
    await asyncio.sleep(0.3)
    stopping.set()
    await task
    status = await store.status("test")
    await store.close()
    journal.close()

    assert status.inbox["done"] + status.inbox["pending"] == 3
    assert journal.records() == []


async def test_a_page_kept_both_in_the_journal_and_the_store_is_stored_once(
    tmp_path: Path,
) -> None:
    # Killed after the page was journaled AND stored as received, before its entries were:
    # both copies are replayed at the next start, and its two identical events ("ok" typed twice
    # in one second) must stay two entries, not become four.
    import aiohttp

    from integration.connectors.bigchat.client import BigChatClient
    from integration.connectors.ourapi.client import OurApiClient
    from integration.core.http import HttpService
    from integration.pipelines.bigchat_ourapi import bigchat_flow

    ok = {"conversation_id": 1, "event_name": "MESSAGE", "event_at": 900, "data": {"message": "ok"}}
    body = json.dumps({"nextPageUrl": None, "events": [ok, ok]}).encode()
    journal = PageJournal(tmp_path / "state.db.pages")
    journal.open()
    journal.append(body)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.receive("bigchat", body)
    async with aiohttp.ClientSession() as session:
        nowhere = "http://127.0.0.1:9"
        pipeline = bigchat_flow(
            BigChatClient(HttpService("bigchat", nowhere, session)),
            OurApiClient(HttpService("ourapi", nowhere, session)),
            store,
            ManualClock(1_000.0),
            journal=journal,
        )
        engine = Engine(pipeline, store, ManualClock(1_000.0), EngineSettings())
        await engine._store_leftovers(engine.flows[0])
    status = await store.status("bigchat")
    await store.close()
    journal.close()

    assert status.inbox["pending"] == 2
