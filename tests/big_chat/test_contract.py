"""The BigChat contract, served over real sockets, with every fault switched off."""

from __future__ import annotations

import math
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

import pytest

from big_chat.models import Advisor, Conversation, Event, EventsPage, TransferData
from tests.big_chat.conftest import EPOCH, HOUR, Running, Start, iso, key

NOW = EPOCH + HOUR


def truth(running: Running, lo: float, hi: float, now: float = NOW) -> list[Event]:
    """What /events must serve for [lo, hi): the world's feed events, in the default order."""
    return [e.to_model() for e in running.world.events_between(lo, hi, now)]


async def test_events_serve_exactly_the_half_open_window(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=1000)
    times = sorted({e.event_at for e in bc.world.events_between(EPOCH + 600, EPOCH + 900, NOW)})
    lo, hi = times[0], times[-1]  # both are times at which events exist
    served = await bc.window(lo, hi)
    assert served == truth(bc, lo, hi)
    assert any(e.event_at == lo for e in served)
    assert all(lo <= e.event_at < hi for e in served)


async def test_next_page_url_is_absolute_with_same_params_and_page_plus_one(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(page_size=5)
    params = {"start_at": iso(EPOCH), "end_at": iso(EPOCH + 600), "page": "0"}
    async with bc.session.get(bc.url + "/events", params=params) as resp:
        body = await resp.json()
    next_url = body["nextPageUrl"]
    parts = urlsplit(next_url)
    assert f"{parts.scheme}://{parts.netloc}" == bc.url
    assert parts.path == "/events"
    assert parse_qs(parts.query) == {
        "start_at": [params["start_at"]],
        "end_at": [params["end_at"]],
        "page": ["1"],
    }


async def test_following_next_page_url_yields_the_whole_window_then_null(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(page_size=7)
    expected = truth(bc, EPOCH, EPOCH + 600)
    pages = []
    page = await bc.page(EPOCH, EPOCH + 600)
    pages.append(page)
    while page.nextPageUrl is not None:
        async with bc.session.get(page.nextPageUrl) as resp:
            page = EventsPage.model_validate(await resp.json())
        pages.append(page)
    assert len(pages) == math.ceil(len(expected) / 7)
    assert all(len(p.events) == 7 for p in pages[:-1])
    assert pages[-1].nextPageUrl is None
    assert [e for p in pages for e in p.events] == expected


async def test_a_page_past_the_end_is_empty_with_null_next(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=5)
    page = await bc.page(EPOCH, EPOCH + 60, page=1000)
    assert page.events == [] and page.nextPageUrl is None


async def test_page_defaults_to_zero(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=5)
    status, body = await bc.get_json("/events", start_at=iso(EPOCH), end_at=iso(EPOCH + 600))
    assert status == 200
    assert [Event.model_validate(e) for e in body["events"]] == truth(bc, EPOCH, EPOCH + 600)[:5]
    assert parse_qs(urlsplit(body["nextPageUrl"]).query)["page"] == ["1"]


async def test_event_shapes_follow_event_name(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=10_000, transfer_probability=0.5)
    status, body = await bc.get_json("/events", start_at=iso(EPOCH), end_at=iso(EPOCH + 1800))
    assert status == 200 and set(body) == {"nextPageUrl", "events"}
    seen = set()
    for event in body["events"]:
        assert set(event) == {"conversation_id", "event_name", "event_at", "data"}
        assert type(event["conversation_id"]) is int and type(event["event_at"]) is int
        name, data = event["event_name"], event["data"]
        seen.add(name)
        if name in ("START", "END"):
            assert data is None
        elif name == "MESSAGE":
            assert set(data) == {"message"} and isinstance(data["message"], str)
        else:
            assert name == "TRANSFER"
            assert set(data) == {"old_advisor_id", "new_advisor_id"}
            assert all(type(v) is int for v in data.values())
    assert seen == {"START", "MESSAGE", "TRANSFER", "END"}


async def test_events_without_start_at_is_422_with_a_detail_list(start_big_chat: Start) -> None:
    bc = await start_big_chat()
    status, body = await bc.get_json("/events", end_at=iso(NOW))
    assert status == 422
    assert body == {
        "detail": [{"loc": ["query", "start_at"], "msg": "Field required", "type": "missing"}]
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_at": "yesterday"}, "start_at"),
        ({"start_at": iso(EPOCH), "end_at": "2023-13-45T00:00:00Z"}, "end_at"),
        ({"start_at": iso(EPOCH), "page": "-1"}, "page"),
        ({"start_at": iso(EPOCH), "page": "first"}, "page"),
    ],
)
async def test_invalid_query_parameters_are_422(
    start_big_chat: Start, params: dict[str, str], field: str
) -> None:
    bc = await start_big_chat()
    status, body = await bc.get_json("/events", **params)
    assert status == 422
    [error] = body["detail"]
    assert error["loc"] == ["query", field] and error["msg"] and error["type"]


async def test_end_at_defaults_to_now(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=10_000)
    assert await bc.window(NOW - 600) == truth(bc, NOW - 600, NOW)


async def test_datetimes_with_any_offset_or_none_mean_the_same_instant(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(page_size=10_000)
    lo, hi = EPOCH + 600, EPOCH + 900  # 2023-11-14T22:23:20Z .. 22:28:20Z
    variants = [
        ("2023-11-14T22:23:20+00:00", "2023-11-14T22:28:20Z"),
        ("2023-11-15T00:23:20+02:00", "2023-11-14T17:28:20-05:00"),
        ("2023-11-14T22:23:20", "2023-11-14T22:28:20"),  # naive: UTC
    ]
    expected = truth(bc, lo, hi)
    assert expected
    for start_at, end_at in variants:
        status, body = await bc.get_json("/events", start_at=start_at, end_at=end_at)
        assert status == 200
        assert [Event.model_validate(e) for e in body["events"]] == expected


async def test_pages_are_ordered_by_time_then_conversation(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=10_000, conversation_rate=2)
    served = await bc.window(EPOCH, EPOCH + 600)
    assert [(e.event_at, e.conversation_id) for e in served] == sorted(
        (e.event_at, e.conversation_id) for e in served
    )


async def test_conversation_has_initial_advisor_and_all_happened_events(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(transfer_probability=0.5)
    script = next(
        s for s in bc.world.iter_scripts(NOW) if any(e.event_name == "TRANSFER" for e in s.events)
    )
    status, body = await bc.get_json(f"/conversations/{script.conversation_id}")
    assert status == 200
    conversation = Conversation.model_validate(body)
    first_transfer = next(e for e in conversation.events if e.event_name == "TRANSFER")
    assert conversation.advisor_id == script.advisor_id
    assert isinstance(first_transfer.data, TransferData)
    assert first_transfer.data.old_advisor_id == script.advisor_id
    assert first_transfer.data.new_advisor_id != script.advisor_id
    assert conversation.events == [e.to_model() for e in script.events]
    assert conversation.events[0].event_name == "START"
    assert conversation.events[-1].event_name == "END"


@pytest.mark.parametrize("conversation_id", ["0", "-3", "999999999999"])
async def test_unknown_conversation_is_404(start_big_chat: Start, conversation_id: str) -> None:
    bc = await start_big_chat()
    status, body = await bc.get_json(f"/conversations/{conversation_id}")
    assert (status, body) == (404, {"detail": "Conversation not found"})


async def test_non_integer_ids_are_422(start_big_chat: Start) -> None:
    bc = await start_big_chat()
    for path, name in (("/conversations/abc", "conversation_id"), ("/advisors/x", "advisor_id")):
        status, body = await bc.get_json(path)
        assert status == 422 and body["detail"][0]["loc"] == ["path", name]


async def test_advisor_has_name_and_email(start_big_chat: Start) -> None:
    bc = await start_big_chat(advisors=3)
    advisors = []
    for advisor_id in (1, 2, 3):
        status, body = await bc.get_json(f"/advisors/{advisor_id}")
        assert status == 200
        advisors.append(Advisor.model_validate(body))
    assert [a.advisor_id for a in advisors] == [1, 2, 3]
    assert len({a.email_address for a in advisors}) == 3 and all(a.name for a in advisors)


@pytest.mark.parametrize("advisor_id", ["0", "4"])
async def test_unknown_advisor_is_404(start_big_chat: Start, advisor_id: str) -> None:
    bc = await start_big_chat(advisors=3)
    status, body = await bc.get_json(f"/advisors/{advisor_id}")
    assert (status, body) == (404, {"detail": "Advisor not found"})


async def test_unknown_path_is_a_json_404(start_big_chat: Start) -> None:
    bc = await start_big_chat()
    assert await bc.get_json("/chats") == (404, {"detail": "Not Found"})


async def test_conversation_ids_increase_with_start_time(start_big_chat: Start) -> None:
    bc = await start_big_chat(now=EPOCH + 300, conversation_rate=1)
    _, body = await bc.get_json("/_standin/conversations")
    ids = body["conversation_ids"]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 100
    starts = []
    for conversation_id in ids:
        _, conversation = await bc.get_json(f"/conversations/{conversation_id}")
        starts.append(conversation["events"][0]["event_at"])
    assert starts == sorted(starts)


async def test_same_seed_and_epoch_serve_the_same_events(start_big_chat: Start) -> None:
    one = await start_big_chat(seed=42, page_size=10_000)
    two = await start_big_chat(seed=42, page_size=10_000)
    other = await start_big_chat(seed=43, page_size=10_000)
    first = await one.window(EPOCH, EPOCH + 900)
    assert first == await two.window(EPOCH, EPOCH + 900)
    assert first != await other.window(EPOCH, EPOCH + 900)
    assert await one.get_json("/advisors/1") == await two.get_json("/advisors/1")


async def test_a_window_asked_twice_returns_the_same_events(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=9)
    first = await bc.window(EPOCH + 100, EPOCH + 700)
    assert first and first == await bc.window(EPOCH + 100, EPOCH + 700)


async def test_a_conversations_events_are_spread_over_windows(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=10_000)
    by_conversation: dict[int, list[Event]] = defaultdict(list)
    windows_of: dict[int, set[float]] = defaultdict(set)
    for lo in range(int(EPOCH), int(EPOCH + 1200), 60):
        for event in await bc.window(lo, lo + 60):
            by_conversation[event.conversation_id].append(event)
            windows_of[event.conversation_id].add(lo)
    assert any(len(w) > 1 for w in windows_of.values())
    for conversation_id, events in by_conversation.items():
        script = bc.world.script(conversation_id)
        if script.start_at >= EPOCH and script.events[-1].event_at < EPOCH + 1200:
            _, body = await bc.get_json(f"/conversations/{conversation_id}")
            assert sorted(events, key=key) == sorted(
                Conversation.model_validate(body).events, key=key
            )


async def test_events_appear_only_once_they_have_happened(start_big_chat: Start) -> None:
    bc = await start_big_chat(now=EPOCH + 600, page_size=10_000)
    before = await bc.window(EPOCH, EPOCH + 1200)
    assert before and max(e.event_at for e in before) <= EPOCH + 600
    first_unstarted = len(bc.world.conversation_ids(EPOCH + 600)) + 1
    assert (await bc.get_json(f"/conversations/{first_unstarted}"))[0] == 404

    bc.clock.advance(300)
    after = await bc.window(EPOCH, EPOCH + 1200)
    assert set(map(key, before)) < set(map(key, after))
    assert max(e.event_at for e in after) > EPOCH + 600
    assert all(e.event_at <= EPOCH + 900 for e in after)
    assert after == truth(bc, EPOCH, EPOCH + 1200, now=EPOCH + 900)
    assert (await bc.get_json(f"/conversations/{first_unstarted}"))[0] == 200


async def test_a_conversation_grows_as_the_clock_advances(start_big_chat: Start) -> None:
    bc = await start_big_chat(now=EPOCH)
    script = bc.world.script(1)
    bc.clock.now = script.start_at
    _, body = await bc.get_json("/conversations/1")
    assert [e["event_name"] for e in body["events"]] == ["START"]
    bc.clock.now = script.events[-1].event_at
    _, body = await bc.get_json("/conversations/1")
    assert len(body["events"]) == len(script.events)


async def test_standin_clock_and_stats(start_big_chat: Start) -> None:
    bc = await start_big_chat()
    assert await bc.get_json("/_standin/clock") == (200, {"now": NOW, "epoch": EPOCH})
    await bc.get_json("/events", start_at=iso(EPOCH))
    await bc.get_json("/events")
    await bc.get_json("/advisors/1")
    status, stats = await bc.get_json("/_standin/stats")
    assert status == 200 and stats["total"] == 3  # /_standin/ calls are not counted
    assert bc.stats.count("/events", 200) == 1 and bc.stats.count("/events", 422) == 1
    assert bc.stats.count("/advisors/{advisor_id}", 200) == 1


async def test_epoch_defaults_to_history_before_now(start_big_chat: Start) -> None:
    bc = await start_big_chat(epoch=None, history=600)
    assert bc.world.epoch == NOW - 600
    assert len(bc.world.conversation_ids(NOW)) > 0
