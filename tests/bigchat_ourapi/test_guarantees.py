"""Nothing lost, nothing duplicated, against a BigChat that behaves like the real one: identical
events in one second, transfers that tie or come before the START, advisors OurAPI will not take,
writes that land after the client gave up. Each test is a regression test for a way the worker
once lost or duplicated data; its name says the outcome that must hold."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from integration.connectors.ourapi.client import OurApiClient
from integration.connectors.ourapi.models import AgentCreate, ChatCreate
from integration.core.clock import utc

from .hostile import NOW, Hostile, T, conversation, run_against

Handler = Any


def ev(cid: int, name: str, at: int, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"conversation_id": cid, "event_name": name, "event_at": at, "data": data}


def msg(cid: int, at: int, text: str) -> dict[str, Any]:
    return ev(cid, "MESSAGE", at, {"message": text})


def transfer(cid: int, at: int, old: int, new: int) -> dict[str, Any]:
    return ev(cid, "TRANSFER", at, {"old_advisor_id": old, "new_advisor_id": new})


# -- identical events -------------------------------------------------------------------------


async def test_the_same_text_typed_twice_in_one_second_is_posted_twice(tmp_path: Path) -> None:
    story = [ev(2, "START", T), msg(2, T + 1, "ok"), msg(2, T + 1, "ok"), ev(2, "END", T + 2)]

    outcome = await run_against(Hostile(windows=[[story]], histories={2: story}), tmp_path)

    assert outcome.texts(2) == ["ok", "ok"]


async def test_identical_messages_split_across_two_pages_are_both_posted(tmp_path: Path) -> None:
    first = [ev(2, "START", T), msg(2, T + 1, "ok")]
    second = [msg(2, T + 1, "ok"), ev(2, "END", T + 2)]

    outcome = await run_against(
        Hostile(windows=[[first, second]], histories={2: first + second}), tmp_path
    )

    assert outcome.texts(2) == ["ok", "ok"]


async def test_texts_equal_once_stripped_are_both_posted_to_a_chat_that_already_existed(
    tmp_path: Path,
) -> None:
    story = [ev(2, "START", T), msg(2, T + 1, "ok"), msg(2, T + 1, " ok"), ev(2, "END", T + 2)]

    async def chat_exists(ourapi: OurApiClient) -> None:
        await ourapi.create_chat(ChatCreate(external_id="2", started_at=utc(T)))

    outcome = await run_against(
        Hostile(windows=[[story]], histories={2: story}), tmp_path, before=chat_exists
    )

    assert outcome.texts(2) == ["ok", "ok"]


async def test_a_redelivered_event_is_still_applied_once(tmp_path: Path) -> None:
    story = [ev(2, "START", T), msg(2, T + 1, "ok"), ev(2, "END", T + 2)]

    outcome = await run_against(
        Hostile(windows=[[story], [story], [[msg(2, T + 1, "ok")]]], histories={2: story}),
        tmp_path,
    )

    assert outcome.texts(2) == ["ok"]


# -- transfers ----------------------------------------------------------------------------


async def test_two_transfers_in_one_second_served_unsorted_follow_the_conversations_order(
    tmp_path: Path,
) -> None:
    history = [
        ev(2, "START", T),
        transfer(2, T + 1, 1, 2),
        transfer(2, T + 1, 2, 3),
        msg(2, T + 2, "hello"),
        ev(2, "END", T + 3),
    ]
    served = [history[2], history[1], history[0], history[3], history[4]]

    outcome = await run_against(
        Hostile(windows=[[served]], histories={2: history}, advisors={2: 1}), tmp_path
    )

    assert outcome.agent_email(2) == "a3@example.com"


async def test_a_transfer_dated_before_its_start_still_decides_the_agent(tmp_path: Path) -> None:
    history = [
        ev(2, "START", T + 5),
        transfer(2, T, 1, 2),
        msg(2, T + 6, "hello"),
        ev(2, "END", T + 7),
    ]

    outcome = await run_against(
        Hostile(windows=[[history]], histories={2: history}, advisors={2: 1}), tmp_path
    )

    assert outcome.agent_email(2) == "a2@example.com"


# -- agent problems never hold back the conversation -----------------------------------------


async def test_an_advisor_whose_name_clashes_gets_no_agent_but_its_chat_messages_and_end_apply(
    tmp_path: Path,
) -> None:
    # The clashing agent exists before the worker runs: two conversations racing to create
    # "Same Name" would make which one loses a matter of scheduling, not of the rule tested.
    clash = conversation(2, "hi there", "bye now", start=T + 5)
    hostile = Hostile(
        windows=[[clash]],
        histories={2: clash},
        advisors={2: 2},
        profiles={2: ("Same Name", "two@example.com")},
    )

    async def name_taken(ourapi: OurApiClient) -> None:
        await ourapi.create_agent(AgentCreate(name="Same Name", email="one@example.com"))

    outcome = await run_against(hostile, tmp_path, before=name_taken)

    assert outcome.texts(2) == ["bye now", "hi there"]
    chat = outcome.chats["2"][0]
    assert chat.ended_at is not None and chat.agent_id is None
    [letter] = outcome.dead
    assert letter.key == "2" and not letter.blocking
    assert "agent" in letter.reason and "two@example.com" in letter.reason


async def test_an_advisor_bigchat_answers_404_for_gets_no_agent_and_the_rest_applies(
    tmp_path: Path,
) -> None:
    orphan = conversation(2, "who is my advisor?")
    hostile = Hostile(windows=[[orphan]], histories={2: orphan}, advisors={2: 99})

    outcome = await run_against(hostile, tmp_path)

    assert outcome.texts(2) == ["who is my advisor?"]
    assert outcome.chats["2"][0].ended_at is not None
    [letter] = outcome.dead
    assert not letter.blocking and "advisor 99" in letter.reason


async def test_a_transfer_to_an_unknown_advisor_keeps_the_last_agent_and_the_rest_applies(
    tmp_path: Path,
) -> None:
    history = [
        ev(2, "START", T),
        msg(2, T + 1, "before"),
        transfer(2, T + 2, 1, 99),
        msg(2, T + 3, "after"),
        ev(2, "END", T + 4),
    ]
    hostile = Hostile(windows=[[history]], histories={2: history}, advisors={2: 1})

    outcome = await run_against(hostile, tmp_path)

    assert outcome.texts(2) == ["after", "before"]
    assert outcome.chats["2"][0].ended_at is not None
    assert outcome.agent_email(2) == "a1@example.com"
    [letter] = outcome.dead
    assert letter.kind == "TRANSFER" and not letter.blocking and "advisor 99" in letter.reason


# -- writes that land late -------------------------------------------------------------------


async def test_a_message_post_that_lands_after_the_client_gave_up_is_not_posted_again(
    tmp_path: Path,
) -> None:
    story = conversation(2, "held by a slow server")
    landed: list[asyncio.Task[None]] = []

    @web.middleware
    async def hold_first_message(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/messages") and not landed:
            # The server keeps working on the write after the client has gone: it lands 3 s
            # later (replayed here as the same request, sent to the server itself).
            body, url = await request.read(), request.url

            async def land_late() -> None:
                await asyncio.sleep(3)
                async with aiohttp.ClientSession() as session:
                    await session.post(url, data=body, headers={"Content-Type": "application/json"})

            landed.append(asyncio.create_task(land_late()))
            await asyncio.sleep(30)  # never answers in time
        return await handler(request)  # type: ignore[no-any-return]

    outcome = await run_against(
        Hostile(windows=[[story]], histories={2: story}),
        tmp_path,
        ourapi_middleware=hold_first_message,
        http_timeout=1,
        settle=lambda: asyncio.gather(*landed),
        pipeline_options={"landing_horizon": 4.0},
    )

    assert outcome.texts(2) == ["held by a slow server"]


# -- links and credentials ---------------------------------------------------------------------


async def test_every_page_carries_the_credentials_given_in_the_bigchat_url(
    tmp_path: Path,
) -> None:
    first, second = conversation(1, "page one"), conversation(2, "page two", start=T + 5)
    hostile = Hostile(windows=[[first, second]], histories={1: first, 2: second})

    outcome = await run_against(
        hostile,
        tmp_path,
        bigchat_url=lambda url: url.replace("http://", "http://reader:s3cret@"),
    )

    assert outcome.texts(2) == ["page two"]
    assert len(hostile.authorizations) >= 2
    assert all(a is not None and a.startswith("Basic ") for a in hostile.authorizations)


async def test_a_next_page_url_naming_the_host_in_capitals_is_followed(tmp_path: Path) -> None:
    first, second = conversation(1, "page one"), conversation(2, "page two", start=T + 5)
    hostile = Hostile(windows=[[first, second]], histories={1: first, 2: second})
    original_app = hostile.app

    def shouting_app() -> web.Application:
        app = original_app()

        @web.middleware
        async def capitals(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/events" and request.query.get("page", "0") == "0":
                link = str(request.url.update_query(page="1")).replace("localhost", "LOCALHOST")
                hostile.next_page_url[(0, 0)] = link
            return await handler(request)  # type: ignore[no-any-return]

        app.middlewares.append(capitals)
        return app

    hostile.app = shouting_app  # type: ignore[method-assign]

    outcome = await run_against(
        hostile, tmp_path, bigchat_url=lambda url: url.replace("127.0.0.1", "localhost")
    )

    assert outcome.texts(2) == ["page two"]
    assert "refusing" not in (outcome.engine.stats.last_poll_error or "")


async def test_a_malformed_next_page_url_does_not_kill_the_poller_and_page_two_arrives(
    tmp_path: Path,
) -> None:
    first, second = conversation(1, "page one"), conversation(2, "page two", start=T + 5)
    hostile = Hostile(
        windows=[[first, second]],
        histories={1: first, 2: second},
        next_page_url={(0, 0): "http://[::1"},
    )

    outcome = await run_against(hostile, tmp_path)

    assert outcome.texts(1) == ["page one"]
    assert outcome.texts(2) == ["page two"]


# -- recovery ----------------------------------------------------------------------------------


async def test_after_an_unclean_stop_a_message_long_after_an_end_is_recovered(
    tmp_path: Path,
) -> None:
    # Conversation 2 ended long ago; much later it emits a MESSAGE (the real BigChat does).
    # That page was served once and the worker died before storing it: only the conversation's
    # history still has it, and recovery must look there although the conversation had ended.
    story = conversation(2, "hello")
    late = msg(2, int(NOW) - 5, "one more thing")  # 11 days after its END
    first = await run_against(Hostile(windows=[[story]], histories={2: story}), tmp_path)
    assert first.texts(2) == ["hello"]

    # The worker died uncleanly (its running mark is left) after the late page was served to it.
    from integration.core.store import SQLiteStore

    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.meta_put("running:bigchat", "2026-01-01T00:00:00+00:00")
    await store.close()
    again = await run_against(Hostile(windows=[[[]]], histories={2: [*story, late]}), tmp_path)

    assert again.texts(2) == ["hello", "one more thing"]
