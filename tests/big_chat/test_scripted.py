"""Scripted worlds: exactly the events a test wrote down, served with the stand-in's paging and
faults, visible when the script says, and ground truth derived from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from big_chat import scripted as s
from big_chat.app import FAULTS
from big_chat.models import Advisor, Event
from big_chat.scripted import ScriptedWorld, WorldScript
from tests.big_chat.conftest import Running, Start

T = 1_700_000_000  # when the scripted conversations start
ANN = {"advisor_id": 1, "name": "Ann Lee", "email_address": "ann@x.example"}
BOB = {"advisor_id": 2, "name": "Bob Ng", "email_address": "bob@x.example"}


def ev(name: str, at: int, data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"event_name": name, "event_at": at, "data": data, **extra}


def msg(at: int, text: str, **extra: Any) -> dict[str, Any]:
    return ev("MESSAGE", at, {"message": text}, **extra)


def transfer(at: int, old: int, new: int) -> dict[str, Any]:
    return ev("TRANSFER", at, {"old_advisor_id": old, "new_advisor_id": new})


def world(*conversations: list[dict[str, Any]], advisors: Any = (ANN, BOB)) -> ScriptedWorld:
    script = WorldScript.model_validate(
        {
            "advisors": list(advisors),
            "conversations": [
                {"conversation_id": cid, "advisor_id": 1, "events": events}
                for cid, events in enumerate(conversations, start=1)
            ],
        }
    )
    return ScriptedWorld.from_model(script)


def texts(events: list[Event]) -> list[tuple[int, str]]:
    return [(e.event_at, e.model_dump()["data"]["message"]) for e in events if e.data is not None]


async def start_scripted(start: Start, w: ScriptedWorld, now: float, **kw: Any) -> Running:
    return await start(now=now, world=w, **kw)


async def test_two_identical_messages_in_one_second_are_both_served(start_big_chat: Start) -> None:
    w = world([ev("START", T), msg(T + 1, "ok"), msg(T + 1, "ok"), msg(T + 1, " ok ")])
    bc = await start_scripted(start_big_chat, w, now=T + 10, page_size=1)
    events = await bc.window(T, T + 10)
    assert texts(events) == [(T + 1, "ok"), (T + 1, "ok"), (T + 1, " ok ")]


async def test_a_late_event_is_served_by_the_first_window_after_it_becomes_visible(
    start_big_chat: Start,
) -> None:
    w = world([ev("START", T), msg(T + 1, "early"), msg(T + 2, "late one", visible_at=T + 100)])
    bc = await start_scripted(start_big_chat, w, now=T + 10)
    assert texts(await bc.window(T, T + 10)) == [(T + 1, "early")]
    bc.clock.now = T + 99
    assert texts(await bc.window(T + 10, T + 99)) == []
    bc.clock.now = T + 100
    assert texts(await bc.window(T + 99, T + 100)) == [(T + 2, "late one")]
    assert texts(await bc.window(T + 100, T + 101)) == []  # released once
    assert len(bc.log.of_kind("late_visible")) == 1


async def test_a_late_event_is_served_in_its_own_window_when_asked_again(
    start_big_chat: Start,
) -> None:
    w = world([ev("START", T), msg(T + 2, "late one", visible_at=T + 100)])
    bc = await start_scripted(start_big_chat, w, now=T + 10)
    assert texts(await bc.window(T, T + 10)) == []
    bc.clock.now = T + 100
    assert texts(await bc.window(T, T + 10)) == [(T + 2, "late one")]


async def test_an_event_out_of_the_feed_is_only_in_the_history(start_big_chat: Start) -> None:
    w = world([ev("START", T, in_feed=False), msg(T + 1, "hello")])
    bc = await start_scripted(start_big_chat, w, now=T + 10)
    assert [e.event_name for e in await bc.window(T, T + 10)] == ["MESSAGE"]
    status, body = await bc.get_json("/conversations/1")
    assert status == 200
    assert [e["event_name"] for e in body["events"]] == ["START", "MESSAGE"]


async def test_the_history_lists_events_in_their_own_order_not_by_time(
    start_big_chat: Start,
) -> None:
    w = world([ev("START", T), transfer(T - 30, 1, 2), msg(T + 5, "b"), msg(T + 2, "a")])
    bc = await start_scripted(start_big_chat, w, now=T + 10)
    _, body = await bc.get_json("/conversations/1")
    assert [e["event_at"] for e in body["events"]] == [T, T - 30, T + 5, T + 2]
    assert [e.event_at for e in await bc.window(T - 60, T + 10)] == [T - 30, T, T + 2, T + 5]


async def test_a_conversation_exists_once_its_start_is_visible(start_big_chat: Start) -> None:
    w = world([ev("START", T + 20), msg(T + 21, "hi")])
    bc = await start_scripted(start_big_chat, w, now=T + 10)
    assert (await bc.get_json("/conversations/1"))[0] == 404
    bc.clock.now = T + 20
    _, body = await bc.get_json("/conversations/1")
    assert [e["event_name"] for e in body["events"]] == ["START"]


async def test_an_unlisted_advisor_answers_404_and_two_may_share_a_name(
    start_big_chat: Start,
) -> None:
    twin = {"advisor_id": 3, "name": "Ann Lee", "email_address": "ann.lee@y.example"}
    w = world([ev("START", T)], advisors=[ANN, twin])
    bc = await start_scripted(start_big_chat, w, now=T + 1)
    assert await bc.get_json("/advisors/2") == (404, {"detail": "Advisor not found"})
    assert (await bc.get_json("/advisors/1"))[1]["name"] == (await bc.get_json("/advisors/3"))[1][
        "name"
    ]


async def test_a_scripted_world_is_paged_and_served_once_like_a_generated_one(
    start_big_chat: Start,
) -> None:
    w = world([ev("START", T), *(msg(T + i, f"m{i}") for i in range(1, 8))])
    bc = await start_scripted(start_big_chat, w, now=T + 10, page_size=3, unreplayable=True)
    first = await bc.page(T, T + 10)
    assert len(first.events) == 3 and first.nextPageUrl is not None
    assert len(await bc.window(T, T + 10)) == 5  # a new snapshot: the first page's were served
    assert await bc.window(T, T + 10) == []


async def test_history_mode_start_only_applies_to_a_scripted_world(start_big_chat: Start) -> None:
    w = world([ev("START", T), msg(T + 1, "hi"), ev("END", T + 2)])
    bc = await start_scripted(start_big_chat, w, now=T + 10, history_mode="start_only")
    assert (await bc.get_json("/conversations/1"))[1] == {
        "conversation_id": 1,
        "advisor_id": 1,
        "events": [{"conversation_id": 1, "event_name": "START", "event_at": T, "data": None}],
    }


async def test_truth_derives_the_expected_chat_from_the_full_history(
    start_big_chat: Start,
) -> None:
    w = world(
        [
            ev("START", T),
            transfer(T + 5, 1, 2),
            transfer(T + 5, 2, 1),  # same second: the later position decides
            msg(T + 3, "ok "),
            msg(T + 3, "ok"),
            ev("END", T + 9),
            ev("END", T + 8),
            msg(T + 50, "long after", visible_at=T + 500),
        ]
    )
    bc = await start_scripted(start_big_chat, w, now=T + 100, history_mode="start_only")
    _, body = await bc.get_json("/_standin/truth")
    [truth] = body["conversations"]
    assert truth["expected"] == {
        "started_at": T,
        "ended_at": T + 8,
        "advisor_id": 1,
        "messages": [[T + 3, "ok"], [T + 3, "ok"]],
    }
    assert len(truth["history"]) == 7  # the full history, whatever history_mode shows


async def test_put_world_replaces_the_world_and_forgets_what_was_served(
    start_big_chat: Start,
) -> None:
    bc = await start_scripted(
        start_big_chat, world([ev("START", T), msg(T + 1, "old")]), now=T + 10, unreplayable=True
    )
    assert texts(await bc.window(T, T + 10)) == [(T + 1, "old")]
    new = {
        "advisors": [ANN],
        "conversations": [
            {"conversation_id": 1, "advisor_id": 1, "events": [ev("START", T), msg(T + 1, "new")]}
        ],
    }
    async with bc.session.put(bc.url + "/_standin/world", json=new) as resp:
        assert resp.status == 200
    assert texts(await bc.window(T, T + 10)) == [(T + 1, "new")]
    assert bc.app[FAULTS].served_count() == 2


async def test_put_world_refuses_a_conversation_without_start_with_422(
    start_big_chat: Start,
) -> None:
    bc = await start_scripted(start_big_chat, world([ev("START", T)]), now=T + 10)
    bad = {"conversations": [{"conversation_id": 1, "advisor_id": 1, "events": [msg(T, "x")]}]}
    async with bc.session.put(bc.url + "/_standin/world", json=bad) as resp:
        assert resp.status == 422
        assert (await resp.json())["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    "event",
    [ev("START", T, {"message": "x"}), ev("MESSAGE", T), ev("TRANSFER", T, {"message": "x"})],
    ids=["start-with-data", "message-without-data", "transfer-with-message-data"],
)
def test_a_script_refuses_data_that_does_not_fit_the_event(event: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorldScript.model_validate(
            {"conversations": [{"conversation_id": 1, "advisor_id": 1, "events": [event]}]}
        )


def test_a_script_file_is_read_as_a_world(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    script = {
        "advisors": [ANN],
        "conversations": [{"conversation_id": 7, "advisor_id": 1, "events": [ev("START", T)]}],
    }
    path.write_text(json.dumps(script), encoding="utf-8")
    w = ScriptedWorld.from_file(path)
    assert (list(w.conversation_ids(T)), w.epoch, w.advisor(1)) == ([7], T, Advisor(**ANN))


def test_the_python_shorthands_write_the_same_script_as_json() -> None:
    by_hand = s.ScriptedConversation(
        conversation_id=1,
        advisor_id=1,
        events=[
            s.start(T, in_feed=False),
            s.transfer(T - 5, 1, 2),
            s.message(T + 1, "ok", visible_at=T + 60),
            s.end(T + 2),
        ],
    )
    as_json = s.ScriptedConversation.model_validate(
        {
            "conversation_id": 1,
            "advisor_id": 1,
            "events": [
                ev("START", T, in_feed=False),
                transfer(T - 5, 1, 2),
                msg(T + 1, "ok", visible_at=T + 60),
                ev("END", T + 2),
            ],
        }
    )
    assert by_hand == as_json
