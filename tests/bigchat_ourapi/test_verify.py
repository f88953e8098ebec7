"""``verify`` finds every kind of difference; ``--repair`` fixes what the contract allows."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.ourapi.client import OurApiClient
from integration.connectors.ourapi.models import ChatUpdate, MessageCreate
from integration.core.http import HttpService
from integration.core.store import SQLiteStore, opened
from integration.pipelines.bigchat_ourapi.repair import repair
from integration.pipelines.bigchat_ourapi.verify import verify
from tests.helpers.policies import FAST_RETRY

from .conftest import Standins, ahead_clock, run_until_idle
from .processes import ROOT


def clients(standins: Standins) -> tuple[BigChatClient, OurApiClient]:
    return (
        BigChatClient(HttpService("bigchat", standins.bigchat_url, standins.session)),
        OurApiClient(HttpService("ourapi", standins.ourapi_url, standins.session)),
    )


async def test_an_empty_ourapi_is_reported_as_missing_every_chat(standins: Standins) -> None:
    bigchat, ourapi = clients(standins)
    ids = standins.conversation_ids()[:10]

    report = await verify(bigchat, ourapi, ids, retry=FAST_RETRY)

    assert not report.ok
    assert report.count("missing chat") == 10


async def test_repair_builds_missing_chats_agents_and_messages_from_scratch(
    standins: Standins,
) -> None:
    bigchat, ourapi = clients(standins)
    ids = standins.conversation_ids()[:10]

    async with opened(SQLiteStore(standins.tmp / "state.db")) as store:
        report = await verify(bigchat, ourapi, ids, store=store)
        repairs = await repair(
            bigchat, ourapi, store, report, clock=ahead_clock(), retry=FAST_RETRY
        )
        after = await verify(bigchat, ourapi, ids, store=store)

    assert report.count("missing chat") == 10
    assert repairs.impossible == []
    assert after.ok, after.findings
    assert after.messages_held == after.messages_expected > 0


async def spoil_a_chat(standins: Standins) -> int:
    """Someone else changes a synced chat's ended_at and agent, and posts one of its messages
    again: returns the conversation id."""
    _, ourapi = clients(standins)
    chats = {c.external_id: c for c in await ourapi.list_chats()}
    victim = next(
        c
        for cid in standins.conversation_ids()
        if (c := chats[str(cid)]).ended_at is not None and c.agent_id is not None
    )
    other_agent = next(
        a.agent_id for a in await ourapi.find_agents() if a.agent_id != victim.agent_id
    )
    await ourapi.update_chat(
        victim.chat_id,
        ChatUpdate(ended_at=datetime(2001, 1, 1, tzinfo=UTC), agent_id=other_agent),
    )
    message = (await ourapi.messages(victim.chat_id))[0]
    await ourapi.post_message(
        victim.chat_id, MessageCreate(sent_at=message.sent_at, text=message.text)
    )
    return int(victim.external_id)


async def test_wrong_fields_are_found_and_duplicates_only_reported(standins: Standins) -> None:
    await run_until_idle(standins.settings())
    bigchat, ourapi = clients(standins)
    cid = await spoil_a_chat(standins)

    async with opened(SQLiteStore(standins.settings().state_db)) as store:
        report = await verify(bigchat, ourapi, standins.conversation_ids(), store=store)
        repairs = await repair(
            bigchat, ourapi, store, report, clock=ahead_clock(), retry=FAST_RETRY
        )

    assert {f.problem for f in report.findings} == {"ended_at", "agent", "duplicated messages"}
    assert {f.conversation_id for f in report.findings} == {cid}
    assert {f.record for f in report.findings} == {"both"}
    assert any("duplicated messages" in line for line in repairs.impossible)


async def test_wrong_fields_are_repaired_through_the_workers_inbox(standins: Standins) -> None:
    await run_until_idle(standins.settings())
    bigchat, ourapi = clients(standins)
    await spoil_a_chat(standins)

    async with opened(SQLiteStore(standins.settings().state_db)) as store:
        report = await verify(bigchat, ourapi, standins.conversation_ids(), store=store)
        await repair(bigchat, ourapi, store, report, clock=ahead_clock(), retry=FAST_RETRY)
        after = await verify(bigchat, ourapi, standins.conversation_ids(), store=store)

    assert {f.problem for f in after.findings} == {"duplicated messages"}


async def run_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_the_verify_command_exits_1_on_differences_and_0_once_repaired(
    standins: Standins,
) -> None:
    state = ("--state-db", str(standins.tmp / "state.db"))
    urls: Any = ("--bigchat-url", standins.bigchat_url, "--ourapi-url", standins.ourapi_url)

    code, out = await run_cli("verify", "--conversations", "1-5", *urls, *state)
    assert code == 1, out
    assert "5 missing chat" in out

    # The worker starts once conversations 1-5 are over: it never receives them.
    world = standins.world
    await run_until_idle(standins.settings(start_at=world.start_at(5) + world.max_duration + 1))
    code, out = await run_cli("verify", "--conversations", "1-5", "--repair", *urls, *state)
    assert code == 0, out
    assert "repaired: 1: applied " in out
    assert out.strip().splitlines()[-1].startswith("verify: 5 conversation(s), 5 chat(s)")


async def test_repair_without_the_workers_state_is_refused(standins: Standins) -> None:
    state = ("--state-db", str(standins.tmp / "nowhere.db"))
    urls: Any = ("--bigchat-url", standins.bigchat_url, "--ourapi-url", standins.ourapi_url)

    code, out = await run_cli("verify", "--conversations", "1-5", "--repair", *urls, *state)

    assert code == 1, out
    assert out.strip() == (
        f"no state at {standins.tmp / 'nowhere.db'} (repairs go through the worker's state;"
        " set STATE_DB to the worker's state)"
    )
    assert standins.ourapi_requests() == 0
