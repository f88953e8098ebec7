"""``verify`` judges what the worker was due to have applied (events before its cursor), against
both records of what happened: BigChat's history where BigChat still lists it, and the worker's
inbox. ``--repair`` repairs only due differences, through the worker's own inbox, ledger and
intents, and never while a worker holds the state.

BigChat here runs on a clock the test moves, and can be made to list only each conversation's
START on ``/conversations/{id}``, as the real service does. The command runs as a real
subprocess against both stand-ins over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
from aiohttp import web

from big_chat.app import create_app as create_bigchat
from big_chat.settings import BigChatSettings
from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.bigchat.models import Conversation, Event
from integration.connectors.ourapi.client import OurApiClient
from integration.connectors.ourapi.models import Chat, ChatUpdate, Message
from integration.core.http import HttpService
from integration.core.lock import StateLock
from integration.core.serving import serve_app
from integration.core.shell import open_engine
from integration.core.store import SQLiteStore, opened
from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
from integration.pipelines.bigchat_ourapi.mapping import fingerprint
from integration.pipelines.bigchat_ourapi.records import InboxRow
from integration.pipelines.bigchat_ourapi.verify import Report, combine, judge, verify
from our_api.app import STATS as OURAPI_STATS
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings
from tests.helpers.clocks import ManualClock
from tests.helpers.policies import FAST_RETRY

from .conftest import NOW, Standins
from .processes import ROOT

LATER = NOW + 300
"""Where BigChat's clock moves on to after the worker has stopped."""

MESSAGES = "/chats/{chat_id}/messages"


@dataclass
class MovingClock:
    """BigChat's clock: the test moves ``at``."""

    at: float

    def __call__(self) -> float:
        return self.at


@web.middleware
async def start_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """``/conversations/{id}`` lists only the START, as the real BigChat does."""
    response = await handler(request)
    if not request.path.startswith("/conversations/") or response.status != 200:
        return response
    assert isinstance(response, web.Response) and response.text is not None
    body = json.loads(response.text)
    body["events"] = [e for e in body["events"] if e["event_name"] == "START"]
    return web.json_response(body)


@dataclass
class World:
    standins: Standins
    clock: MovingClock

    @property
    def state_db(self) -> Path:
        return self.standins.tmp / "state.db"


Start = Callable[..., Awaitable[World]]


@pytest.fixture
async def start_world(tmp_path: Path) -> AsyncIterator[Start]:
    async with AsyncExitStack() as stack:

        async def start(*, listing_only_starts: bool = False) -> World:
            clock = MovingClock(NOW)
            settings = BigChatSettings(seed=7, history=1200, conversation_rate=0.1, page_size=25)
            bigchat_app = create_bigchat(settings, clock=clock)
            if listing_only_starts:
                bigchat_app.middlewares.append(start_only)
            ourapi_app = create_ourapi(OurApiSettings(db=str(tmp_path / "ourapi.db"), seed=3))
            bigchat = await stack.enter_async_context(serve_app(bigchat_app))
            ourapi = await stack.enter_async_context(serve_app(ourapi_app))
            session = await stack.enter_async_context(aiohttp.ClientSession())
            standins = Standins(
                bigchat.url, ourapi.url, bigchat_app, ourapi_app, session, tmp_path, NOW
            )
            return World(standins, clock)

        yield start


async def run_worker(world: World, until: float, *, limit: float = 60.0) -> None:
    """Run the worker (in this process, on a clock just past ``until``) until its cursor has
    reached ``until`` and nothing is pending; then stop it the clean way."""
    settings = world.standins.settings()
    async with open_engine(
        BIGCHAT, settings, clock=ManualClock(until + 1), retry=FAST_RETRY
    ) as engine:
        async with asyncio.timeout(limit):
            assert await engine.run(asyncio.Event(), once=True)  # drain mode
        assert engine.drained, engine.drain_problems


async def verify_cli(world: World, *args: str) -> tuple[int, str]:
    """``python run.py verify`` against the stand-ins and the worker's state."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "verify",
        "--bigchat-url", world.standins.bigchat_url,
        "--ourapi-url", world.standins.ourapi_url,
        "--state-db", str(world.state_db),
        *args,
        cwd=str(world.standins.tmp),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


def ourapi_writes(world: World) -> int:
    """Every POST and PATCH OurAPI has answered."""
    stats = world.standins.ourapi_app[OURAPI_STATS].snapshot()
    return sum(r["count"] for r in stats["requests"] if r["method"] in ("POST", "PATCH"))


def message_posts(world: World) -> int:
    return int(world.standins.ourapi_app[OURAPI_STATS].count("POST", MESSAGES))


def state_rows(world: World, sql: str, *params: Any) -> list[Any]:
    with sqlite3.connect(world.state_db) as db:
        return db.execute(sql, params).fetchall()


def cursor_of(world: World) -> float:
    return float(state_rows(world, "SELECT position FROM cursors WHERE name = 'bigchat'")[0][0])


def seen_ids(world: World) -> list[int]:
    return sorted(int(k) for (k,) in state_rows(world, "SELECT DISTINCT key FROM inbox"))


def dated_from(world: World, ids: list[int], since: float) -> tuple[int, int]:
    """BigChat's ground truth: messages dated at or after ``since`` in conversations ``ids``, and
    how many of those conversations have any event dated then."""
    messages = conversations = 0
    for cid in ids:
        conversation = world.standins.world.conversation(cid, world.clock.at)
        assert conversation is not None
        later = [e for e in conversation.events if e.event_at >= since]
        messages += sum(1 for e in later if e.event_name == "MESSAGE")
        conversations += bool(later)
    return messages, conversations


def delete_a_message(world: World) -> tuple[int, str]:
    """Lose one customer message in OurAPI (as a deployment losing writes would): returns the
    conversation id and the text."""
    with sqlite3.connect(world.standins.tmp / "ourapi.db") as db:
        external_id, message_id, text = db.execute(
            "SELECT c.external_id, m.message_id, m.text FROM messages m"
            " JOIN chats c ON c.chat_id = m.chat_id ORDER BY m.seq LIMIT 1 OFFSET 7"
        ).fetchone()
        db.execute("DELETE FROM messages WHERE message_id = ?", (message_id,))
    return int(external_id), str(text)


def messages_in_ourapi(world: World, cid: int) -> int:
    with sqlite3.connect(world.standins.tmp / "ourapi.db") as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM messages m JOIN chats c ON c.chat_id = m.chat_id"
            " WHERE c.external_id = ?",
            (str(cid),),
        ).fetchone()
    return int(count)


def finding_line(out: str, cid: int, problem: str) -> str:
    lines = [ln for ln in out.splitlines() if re.match(rf"\s*{cid}\s+{problem}\s", ln)]
    assert len(lines) == 1, out
    return lines[0]


async def verify_everything(world: World) -> Report:
    """Every conversation BigChat has now, against its full history (nothing left to be due)."""
    session = world.standins.session
    bigchat = BigChatClient(HttpService("bigchat", world.standins.bigchat_url, session))
    ourapi = OurApiClient(HttpService("ourapi", world.standins.ourapi_url, session))
    ids = list(world.standins.world.conversation_ids(world.clock.at))
    return await verify(bigchat, ourapi, ids, retry=FAST_RETRY)


# -- what is due -------------------------------------------------------------------------------


async def test_events_after_a_clean_stop_are_not_yet_due_and_verify_exits_0(
    start_world: Start,
) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    cursor = cursor_of(world)
    world.clock.at = LATER  # BigChat goes on after the worker stopped
    later, conversations = dated_from(world, seen_ids(world), cursor)
    assert later > 0, "BigChat should have produced messages after the stop"

    code, out = await verify_cli(world)

    assert code == 0, out
    assert f"not yet due: {later} message(s) in {conversations} conversation(s) after " in out
    assert "(the worker's cursor)" in out
    assert out.strip().splitlines()[-1].startswith("verify: "), out
    assert ": OK, no differences" in out.strip().splitlines()[-1]


async def test_until_judges_up_to_the_time_given_instead_of_the_cursor(
    start_world: Start,
) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    world.clock.at = LATER

    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(LATER + 1))  # no offset: UTC

    code, out = await verify_cli(world, "--until", until)

    assert code == 1, out  # BigChat's newer messages are due by then, and OurAPI lacks them
    assert "missing messages" in out
    assert f"not yet due: 0 message(s) in 0 conversation(s) after {until}Z (--until)" in out


async def test_repair_after_a_clean_stop_posts_nothing_and_a_restarted_worker_duplicates_nothing(
    start_world: Start,
) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    world.clock.at = LATER
    before = ourapi_writes(world)

    code, out = await verify_cli(world, "--repair")
    repair_writes = ourapi_writes(world) - before
    await run_worker(world, LATER)  # the worker comes back and catches up

    report = await verify_everything(world)
    assert report.count("duplicated messages") == 0, report.findings
    assert report.ok, report.findings
    assert report.messages_held == report.messages_expected > 0
    assert repair_writes == 0, out
    assert code == 0, out


async def test_a_conversation_whose_start_is_not_yet_due_is_not_yet_due(
    start_world: Start,
) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    cursor = cursor_of(world)
    world.clock.at = LATER
    everything = list(world.standins.world.conversation_ids(LATER))
    seen = seen_ids(world)
    assert len(everything) > len(seen), "BigChat should have started conversations since"
    later, conversations = dated_from(world, everything, cursor)

    code, out = await verify_cli(world, "--conversations", f"1-{everything[-1]}")

    assert code == 0, out
    assert f"not yet due: {later} message(s) in {conversations} conversation(s) after " in out
    assert out.strip().splitlines()[-1].startswith(f"verify: {len(seen)} conversation(s), ")


# -- a BigChat that lists only the START -------------------------------------------------------


async def test_against_a_bigchat_listing_only_starts_a_synced_state_verifies_ok(
    start_world: Start,
) -> None:
    world = await start_world(listing_only_starts=True)
    await run_worker(world, NOW)

    code, out = await verify_cli(world)

    assert code == 0, out
    assert "unexpected" not in out
    assert ": OK, no differences" in out.strip().splitlines()[-1]


async def test_against_a_bigchat_listing_only_starts_repair_changes_nothing(
    start_world: Start,
) -> None:
    world = await start_world(listing_only_starts=True)
    await run_worker(world, NOW)
    before = ourapi_writes(world)

    code, out = await verify_cli(world, "--repair")

    assert ourapi_writes(world) == before, out
    assert code == 0, out


# -- a difference that is due ------------------------------------------------------------------


async def test_a_message_missing_in_ourapi_is_found_on_the_inbox_when_bigchat_lists_only_starts(
    start_world: Start,
) -> None:
    world = await start_world(listing_only_starts=True)
    await run_worker(world, NOW)
    cid, _ = delete_a_message(world)

    code, out = await verify_cli(world)

    assert code == 1, out
    assert re.search(r"missing messages\s+inbox\s+1 missing", finding_line(out, cid, "missing"))


async def test_repairing_a_missing_message_twice_posts_it_once(start_world: Start) -> None:
    world = await start_world(listing_only_starts=True)
    await run_worker(world, NOW)
    held = {cid: messages_in_ourapi(world, cid) for cid in seen_ids(world)}
    cid, _ = delete_a_message(world)
    posts = message_posts(world)

    first, out1 = await verify_cli(world, "--repair")
    second, out2 = await verify_cli(world, "--repair")

    assert message_posts(world) - posts == 1, out1 + out2
    assert messages_in_ourapi(world, cid) == held[cid]
    assert (first, second) == (0, 0), out1 + out2
    assert f"repaired: {cid}: " in out1


async def test_a_repaired_message_is_not_posted_again_by_the_next_worker_run(
    start_world: Start,
) -> None:
    world = await start_world(listing_only_starts=True)
    await run_worker(world, NOW)
    cursor = cursor_of(world)
    cid, _ = delete_a_message(world)
    held = messages_in_ourapi(world, cid) + 1

    code, out = await verify_cli(world, "--repair")
    world.clock.at = LATER
    await run_worker(world, LATER)

    later, _ = dated_from(world, [cid], cursor)
    assert code == 0, out
    assert messages_in_ourapi(world, cid) == held + later


# -- which record a finding rests on -----------------------------------------------------------


async def test_a_message_both_records_list_is_found_on_both(start_world: Start) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    cid, _ = delete_a_message(world)

    code, out = await verify_cli(world)

    assert code == 1, out
    assert re.search(r"missing messages\s+both\s+1 missing", finding_line(out, cid, "missing"))


async def test_a_message_only_bigchat_still_lists_is_found_on_bigchat(start_world: Start) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    cid, text = delete_a_message(world)
    with sqlite3.connect(world.state_db) as db:  # the worker's record of it is gone (pruned)
        rows = db.execute(
            "SELECT seq, payload FROM inbox WHERE key = ? AND kind = 'MESSAGE'", (str(cid),)
        ).fetchall()
        seqs = [seq for seq, p in rows if json.loads(p)["data"]["message"].strip() == text]
        assert len(seqs) == 1
        db.execute("DELETE FROM inbox WHERE seq = ?", (seqs[0],))

    code, out = await verify_cli(world)

    assert code == 1, out
    assert re.search(r"missing messages\s+bigchat\s+1 missing", finding_line(out, cid, "missing"))


# -- the state lock ----------------------------------------------------------------------------


async def test_repair_refuses_while_a_worker_holds_the_state(start_world: Start) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    delete_a_message(world)
    before = ourapi_writes(world)
    lock = StateLock(world.state_db)
    lock.acquire()
    try:
        code, out = await verify_cli(world, "--repair")
    finally:
        lock.release()

    assert code == 1, out
    assert len(out.strip().splitlines()) == 1, out
    assert "worker" in out
    assert ourapi_writes(world) == before


async def test_verify_without_repair_runs_beside_a_worker(start_world: Start) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    cid, _ = delete_a_message(world)
    lock = StateLock(world.state_db)
    lock.acquire()
    try:
        code, out = await verify_cli(world)
    finally:
        lock.release()

    assert code == 1, out
    finding_line(out, cid, "missing messages")


# -- an agent problem the worker has dead-lettered ---------------------------------------------


async def test_an_agent_difference_with_an_agent_dead_letter_is_listed_but_not_counted(
    start_world: Start,
) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    session = world.standins.session
    ourapi = OurApiClient(HttpService("ourapi", world.standins.ourapi_url, session))
    chat = next(c for c in await ourapi.list_chats() if c.agent_id is not None)
    other = next(a.agent_id for a in await ourapi.find_agents() if a.agent_id != chat.agent_id)
    await ourapi.update_chat(chat.chat_id, ChatUpdate(agent_id=other))
    async with opened(SQLiteStore(world.state_db)) as store:
        start = (await store.entries_for_key("bigchat", chat.external_id))[0]
        letter = await store.dead_letter(
            start, "BigChat has no advisor 99 (agent unknown)", blocking=False
        )

    code, out = await verify_cli(world)

    line = finding_line(out, int(chat.external_id), "agent problem")
    assert f"dead letter #{letter}: BigChat has no advisor 99 (agent unknown)" in line
    assert code == 0, out
    assert ": OK, 1 agent problem" in out.strip().splitlines()[-1]


async def test_an_agent_difference_without_a_dead_letter_is_a_difference(
    start_world: Start,
) -> None:
    world = await start_world()
    await run_worker(world, NOW)
    session = world.standins.session
    ourapi = OurApiClient(HttpService("ourapi", world.standins.ourapi_url, session))
    chat = next(c for c in await ourapi.list_chats() if c.agent_id is not None)
    other = next(a.agent_id for a in await ourapi.find_agents() if a.agent_id != chat.agent_id)
    await ourapi.update_chat(chat.chat_id, ChatUpdate(agent_id=other))

    code, out = await verify_cli(world)

    assert re.search(r"agent\s+both\s", finding_line(out, int(chat.external_id), "agent"))
    assert code == 1, out


# -- judging, rule by rule (pure: no servers) ---------------------------------------------------

CID = 5
T0 = 1_700_000_000
AGENTS = {1: uuid4(), 2: uuid4(), 3: uuid4()}


def raw(name: str, at: int, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"conversation_id": CID, "event_name": name, "event_at": at, "data": data}


def said(at: int, text: str) -> dict[str, Any]:
    return raw("MESSAGE", at, {"message": text})


def moved(at: int, old: int, new: int) -> dict[str, Any]:
    return raw("TRANSFER", at, {"old_advisor_id": old, "new_advisor_id": new})


def inbox(*events: dict[str, Any]) -> list[InboxRow]:
    rows = []
    for seq, e in enumerate(events, start=1):
        event = Event.model_validate(e)
        rows.append(InboxRow(seq, fingerprint(event), event, "done"))
    return rows


def listed(*events: dict[str, Any], advisor: int = 1) -> Conversation:
    return Conversation(conversation_id=CID, advisor_id=advisor, events=list(events))


def chat(*, agent: int | None = 1, ended: int | None = None, started: int = T0) -> Chat:
    return Chat(
        chat_id=uuid4(),
        external_id=str(CID),
        started_at=datetime.fromtimestamp(started, UTC),
        ended_at=datetime.fromtimestamp(ended, UTC) if ended is not None else None,
        agent_id=AGENTS[agent] if agent is not None else None,
    )


def held(*messages: tuple[int, str]) -> list[Message]:
    return [
        Message(
            message_id=uuid4(),
            chat_id=uuid4(),
            sent_at=datetime.fromtimestamp(at, UTC),
            text=text,
        )
        for at, text in messages
    ]


def problems(
    conversation: Conversation | None,
    rows: list[InboxRow],
    target: Chat | None,
    messages: list[Message],
    until: float | None = None,
) -> list[tuple[str, str]]:
    history = combine(CID, conversation, rows)
    assert history is not None
    judged = judge(history, target, messages, dict(AGENTS), until)
    return sorted((f.problem, f.record) for f in judged.findings if f.counted)


SYNCED = (raw("START", T0), said(T0 + 1, "hello"), moved(T0 + 2, 1, 2), raw("END", T0 + 3))


def test_a_message_only_ourapi_holds_is_unexpected_when_bigchat_lists_the_whole_history() -> None:
    found = problems(
        listed(*SYNCED), inbox(*SYNCED), chat(agent=2, ended=T0 + 3),
        held((T0 + 1, "hello"), (T0 + 1, "spam")),
    )  # fmt: skip

    assert found == [("unexpected messages", "both")]


def test_a_message_only_ourapi_holds_is_not_reported_when_bigchat_lists_only_the_start() -> None:
    found = problems(
        listed(raw("START", T0)), inbox(*SYNCED), chat(agent=2, ended=T0 + 3),
        held((T0 + 1, "hello"), (T0 + 1, "spam")),
    )  # fmt: skip

    assert found == []


def test_the_agent_is_not_judged_when_neither_record_lists_the_conversation_from_its_start() -> (
    None
):
    thin_inbox = inbox(said(T0 + 1, "hello"))  # its START and TRANSFER were pruned

    found = problems(listed(raw("START", T0)), thin_inbox, chat(agent=2), held((T0 + 1, "hello")))

    assert found == []


def test_transfers_in_the_same_second_are_decided_by_bigchats_order() -> None:
    events = (raw("START", T0), moved(T0 + 5, 1, 3), moved(T0 + 5, 3, 2))

    assert problems(listed(*events), [], chat(agent=2), []) == []
    assert problems(listed(*events), [], chat(agent=3), []) == [("agent", "bigchat")]


def test_an_end_not_yet_due_that_ourapi_already_holds_is_no_difference() -> None:
    events = (raw("START", T0), said(T0 + 1, "hello"), raw("END", T0 + 50))

    found = problems(
        listed(*events), inbox(*events), chat(ended=T0 + 50), held((T0 + 1, "hello")),
        until=T0 + 10,
    )  # fmt: skip

    assert found == []


def test_a_message_ourapi_holds_from_after_the_cursor_is_not_yet_due() -> None:
    events = (raw("START", T0), said(T0 + 1, "hello"), said(T0 + 20, "later"))
    history = combine(CID, listed(*events), inbox(*events))
    assert history is not None

    judged = judge(
        history, chat(), held((T0 + 1, "hello"), (T0 + 20, "later")), dict(AGENTS), T0 + 10
    )

    assert judged.findings == []
    assert (judged.later_messages, judged.held, judged.expected) == (1, 1, 1)


def test_a_missing_message_rests_on_the_record_that_lists_it() -> None:
    hello, bye = said(T0 + 1, "hello"), said(T0 + 2, "bye")

    found = problems(listed(raw("START", T0), hello), inbox(raw("START", T0), bye), chat(), [])

    assert found == [("missing messages", "bigchat"), ("missing messages", "inbox")]


async def test_repair_after_an_advisors_e_mail_changed_is_a_readable_report_not_a_traceback(
    start_world: Start,
) -> None:
    from big_chat.app import WORLD
    from big_chat.models import Advisor

    world = await start_world()
    await run_worker(world, NOW)
    # BigChat now says advisor 1 has another e-mail; an agent for it would clash on the name.
    advisors = world.standins.bigchat_app[WORLD]._advisors
    old = advisors[1]
    advisors[1] = Advisor(advisor_id=1, name=old.name, email_address="moved@bigchat.example")

    code, out = await verify_cli(world, "--repair")

    assert "Traceback" not in out, out
    assert code in (0, 1)
    assert out.strip().splitlines()[-1].startswith("verify: ")
