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
from integration.pipelines.bigchat_ourapi.verify import repair, verify

from .conftest import FAST_RETRY, Standins, run_until_idle
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

    repairs = await repair(bigchat, ourapi, await verify(bigchat, ourapi, ids), retry=FAST_RETRY)

    assert any("created the missing chat" in line for line in repairs.done)
    after = await verify(bigchat, ourapi, ids)
    assert after.ok, after.findings
    assert after.messages_held == after.messages_expected > 0


async def test_wrong_fields_are_repaired_and_duplicates_only_reported(standins: Standins) -> None:
    await run_until_idle(standins.settings())
    bigchat, ourapi = clients(standins)
    ids = standins.conversation_ids()
    chats = {c.external_id: c for c in await ourapi.list_chats()}
    victim = next(
        c for cid in ids if (c := chats[str(cid)]).ended_at is not None and c.agent_id is not None
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

    report = await verify(bigchat, ourapi, ids)
    found = {f.problem for f in report.findings if f.conversation_id == int(victim.external_id)}
    assert found == {"ended_at", "agent", "duplicated messages"}

    repairs = await repair(bigchat, ourapi, report, retry=FAST_RETRY)

    assert any("duplicated messages" in line for line in repairs.impossible)
    after = await verify(bigchat, ourapi, ids)
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
    urls: Any = ("--bigchat-url", standins.bigchat_url, "--ourapi-url", standins.ourapi_url)

    code, out = await run_cli("verify", "--conversations", "1-5", *urls)
    assert code == 1, out
    assert "5 missing chat" in out

    code, out = await run_cli("verify", "--conversations", "1-5", "--repair", *urls)
    assert code == 0, out
    assert "repaired: 1: created the missing chat" in out
    assert out.strip().splitlines()[-1].startswith("verify: 5 conversation(s), 5 chat(s)")
