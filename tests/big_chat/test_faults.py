"""Each fault and quirk flag does what it says, and every injection is in the fault log."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from big_chat.models import Conversation, Event, TransferData
from tests.big_chat.conftest import EPOCH, HOUR, Running, Start, iso, key

NOW = EPOCH + HOUR


def truth(bc: Running, lo: float, hi: float) -> list[Event]:
    return [e.to_model() for e in bc.world.events_between(lo, hi, NOW)]


async def raw_get(bc: Running, target: str) -> tuple[bytes, bool]:
    """One keep-alive HTTP/1.1 request on a fresh socket: the raw answer, and whether the server
    closed the connection after it."""
    host, port = bc.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        body = await reader.readexactly(length)
        try:
            rest = await asyncio.wait_for(reader.read(1), timeout=1.0)
            closed = rest == b""
        except TimeoutError:
            closed = False
        return head + body, closed
    finally:
        writer.close()


# -- request-level faults ------------------------------------------------------------------


async def test_error_rate_one_answers_500_plain_text_and_closes_the_connection(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(error_rate=1.0)
    answer, closed = await raw_get(bc, f"/events?start_at={EPOCH:.0f}")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500")
    assert b"content-type: text/plain" in head.lower()
    assert b"connection: close" in head.lower()
    assert body and not body.startswith(b"{")
    assert closed
    [record] = bc.log.of_kind("error")
    assert record.detail["route"] == "/events"


async def test_a_healthy_answer_keeps_the_connection_open(start_big_chat: Start) -> None:
    bc = await start_big_chat()
    answer, closed = await raw_get(bc, f"/events?start_at={EPOCH:.0f}&end_at={EPOCH + 60:.0f}")
    assert answer.startswith(b"HTTP/1.1 200") and not closed


async def test_error_rate_applies_to_events_only_unless_all_routes(start_big_chat: Start) -> None:
    events_only = await start_big_chat(error_rate=1.0)
    assert (await events_only.get_json("/advisors/1"))[0] == 200
    everywhere = await start_big_chat(error_rate=1.0, error_all_routes=True)
    async with everywhere.session.get(everywhere.url + "/advisors/1") as resp:
        assert resp.status == 500
    assert len(everywhere.log.of_kind("error")) == 1


async def test_error_rate_fails_about_that_share_and_logs_each(start_big_chat: Start) -> None:
    bc = await start_big_chat(error_rate=0.3)
    statuses: Counter[int] = Counter()
    for _ in range(60):
        async with bc.session.get(bc.url + "/events", params={"start_at": iso(NOW - 60)}) as r:
            statuses[r.status] += 1
    assert 5 <= statuses[500] <= 35 and statuses[200] == 60 - statuses[500]
    assert len(bc.log.of_kind("error")) == statuses[500]


async def test_rate_limit_answers_429_with_retry_after(start_big_chat: Start) -> None:
    bc = await start_big_chat(rate_limit=2)
    answers = []
    for _ in range(5):
        async with bc.session.get(bc.url + "/advisors/1") as resp:
            answers.append((resp.status, resp.headers.get("Retry-After"), await resp.json()))
    assert [status for status, _, _ in answers[:2]] == [200, 200]
    limited = [a for a in answers if a[0] == 429]
    assert len(limited) >= 2
    for _, retry_after, body in limited:
        assert retry_after is not None and int(retry_after) >= 1
        assert isinstance(body["detail"], str)
    assert len(bc.log.of_kind("rate_limit")) == len(limited)
    assert (await bc.get_json("/_standin/clock"))[0] == 200  # additions are never limited


async def test_latency_delays_answers_without_blocking_the_server(start_big_chat: Start) -> None:
    bc = await start_big_chat(latency_ms=300)
    began = time.perf_counter()
    results = await asyncio.gather(*(bc.get_json(f"/advisors/{i}") for i in range(1, 9)))
    elapsed = time.perf_counter() - began
    assert all(status == 200 for status, _ in results)
    assert 0.3 <= elapsed < 2.0  # eight concurrent calls, not eight in a row (2.4 s)


async def test_patch_faults_changes_them_at_run_time(start_big_chat: Start) -> None:
    bc = await start_big_chat(error_rate=1.0)
    params = {"start_at": iso(NOW - 60)}
    async with bc.session.get(bc.url + "/events", params=params) as resp:
        assert resp.status == 500
    async with bc.session.patch(bc.url + "/_standin/faults", json={"error_rate": 0}) as resp:
        assert resp.status == 200 and (await resp.json())["error_rate"] == 0
    async with bc.session.get(bc.url + "/events", params=params) as resp:
        assert resp.status == 200
    for bad in ({"error_rate": 2}, {"no_such_fault": True}):
        async with bc.session.patch(bc.url + "/_standin/faults", json=bad) as resp:
            assert resp.status == 422
    _, body = await bc.get_json("/_standin/faults")
    assert body["settings"]["error_rate"] == 0 and len(body["faults"]) == 1


# -- /events content faults ------------------------------------------------------------------


async def test_duplicates_are_served_again_in_a_later_window_and_logged(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(duplicate_rate=0.5, page_size=10_000)
    first = await bc.window(EPOCH + 600, EPOCH + 900)
    second = await bc.window(EPOCH + 900, EPOCH + 1200)
    own = truth(bc, EPOCH + 900, EPOCH + 1200)
    extra = Counter(map(key, second)) - Counter(map(key, own))
    assert set(map(key, own)) <= set(map(key, second))
    assert extra and set(extra) < set(map(key, first))  # some, not all, of the first window
    logged = bc.log.of_kind("duplicate")
    assert Counter(key(r.event.to_model()) for r in logged if r.event) == extra
    assert all(r.origin is not None and r.origin.start_at == EPOCH + 600 for r in logged)
    assert all(r.window is not None and r.window.start_at == EPOCH + 900 for r in logged)


async def test_late_events_skip_their_window_and_arrive_in_a_later_one(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(late_rate=0.3, page_size=10_000)
    lo, mid, hi = EPOCH + 600, EPOCH + 900, EPOCH + 1200
    first = await bc.window(lo, mid)
    withheld = bc.log.of_kind("late_withheld")
    assert withheld
    late_keys = {key(r.event.to_model()) for r in withheld if r.event}
    assert set(map(key, first)) == set(map(key, truth(bc, lo, mid))) - late_keys
    assert await bc.window(lo, mid) == first  # asked again, still withheld

    second = await bc.window(mid, hi)
    released = [e for e in second if e.event_at < mid]
    assert {key(e) for e in released} == late_keys
    logged = bc.log.of_kind("late")
    assert {key(r.event.to_model()) for r in logged if r.event} == late_keys
    assert all(r.origin is not None and r.origin.start_at == lo for r in logged)


async def test_shuffle_serves_the_same_events_unsorted(start_big_chat: Start) -> None:
    bc = await start_big_chat(shuffle=True, page_size=10_000)
    served = await bc.window(EPOCH, EPOCH + 900)
    expected = truth(bc, EPOCH, EPOCH + 900)
    assert sorted(served, key=key) == sorted(expected, key=key)
    assert served != expected
    assert [(e.event_at, e.conversation_id) for e in served] != sorted(
        (e.event_at, e.conversation_id) for e in served
    )
    assert len(bc.log.of_kind("shuffle")) == 1


async def test_ignore_end_at_serves_events_up_to_now(start_big_chat: Start) -> None:
    bc = await start_big_chat(now=EPOCH + 1200, ignore_end_at=True, page_size=10_000)
    served = await bc.window(EPOCH + 600, EPOCH + 700)
    expected = [e.to_model() for e in bc.world.events_between(EPOCH + 600, NOW, EPOCH + 1200)]
    assert served == expected
    assert max(e.event_at for e in served) > EPOCH + 1100
    beyond = [e for e in served if e.event_at >= EPOCH + 700]
    assert len(bc.log.of_kind("ignore_end_at")) == len(beyond) > 0


async def test_unreplayable_events_are_served_once_and_stay_in_conversations(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(unreplayable=True, page_size=10_000)
    first = await bc.window(EPOCH + 600, EPOCH + 900)
    assert first == truth(bc, EPOCH + 600, EPOCH + 900)
    assert await bc.window(EPOCH + 600, EPOCH + 900) == []
    overlapping = await bc.window(EPOCH + 800, EPOCH + 1000)
    assert overlapping == [
        e for e in truth(bc, EPOCH + 800, EPOCH + 1000) if e.event_at >= 900 + EPOCH
    ]
    assert bc.log.of_kind("unreplayable")
    event = first[0]
    _, body = await bc.get_json(f"/conversations/{event.conversation_id}")
    assert event in Conversation.model_validate(body).events


async def test_unreplayable_paging_within_one_snapshot_skips_nothing(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(unreplayable=True, page_size=5)
    expected = truth(bc, EPOCH + 600, EPOCH + 900)
    assert len(expected) > 20
    assert await bc.window(EPOCH + 600, EPOCH + 900) == expected


async def test_unreplayable_new_snapshot_keeps_what_was_not_yet_served(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(unreplayable=True, page_size=5)
    expected = truth(bc, EPOCH + 600, EPOCH + 900)
    first_page = await bc.page(EPOCH + 600, EPOCH + 900)  # only page 0 is fetched
    assert first_page.events == expected[:5]
    again = await bc.window(EPOCH + 600, EPOCH + 900)  # a new page-0 snapshot
    assert again == expected[5:]


# -- quirks of the world --------------------------------------------------------------------


async def quirks(bc: Running, kind: str) -> list[dict[str, object]]:
    _, body = await bc.get_json("/_standin/faults")
    return [q for q in body["quirks"] if q["kind"] == kind]


async def test_repeat_end_reports_end_again_later(start_big_chat: Start) -> None:
    bc = await start_big_chat(repeat_end_rate=1.0, repeat_end_max=4, page_size=10_000)
    served = await bc.window(EPOCH, EPOCH + 1200)
    ends = Counter(e.conversation_id for e in served if e.event_name == "END")
    assert max(ends.values()) >= 2
    cid = next(c for c, n in ends.items() if n >= 2)
    _, body = await bc.get_json(f"/conversations/{cid}")
    end_times = [e["event_at"] for e in body["events"] if e["event_name"] == "END"]
    assert len(end_times) >= 2 and end_times == sorted(set(end_times))
    recorded = [q for q in await quirks(bc, "repeat_end") if q["conversation_id"] == cid]
    assert sorted(q["event"]["event_at"] for q in recorded) == end_times[1:]  # type: ignore[index]


async def test_after_end_serves_a_message_after_the_end(start_big_chat: Start) -> None:
    bc = await start_big_chat(after_end_rate=1.0)
    recorded = await quirks(bc, "after_end")
    assert recorded
    cid = recorded[0]["conversation_id"]
    _, body = await bc.get_json(f"/conversations/{cid}")
    names = [e["event_name"] for e in body["events"]]
    assert names[-1] == "MESSAGE" and "END" in names
    after = body["events"][-1]
    assert after == recorded[0]["event"]
    served = await bc.window(after["event_at"], after["event_at"] + 1)
    assert Event.model_validate(after) in served


async def test_missing_start_is_never_served_but_is_in_the_conversation(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(missing_start_rate=1.0, page_size=10_000)
    served = await bc.window(EPOCH, EPOCH + 900)
    assert served and not [e for e in served if e.event_name == "START"]
    cid = served[0].conversation_id
    _, body = await bc.get_json(f"/conversations/{cid}")
    assert body["events"][0]["event_name"] == "START"
    assert {q["conversation_id"] for q in await quirks(bc, "missing_start")} >= {
        e.conversation_id for e in served
    }


async def test_wrong_old_advisor_is_not_the_advisor_the_conversation_had(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(wrong_old_advisor_rate=1.0, advisors=5, transfer_probability=0.5)
    wrong = 0
    for cid in range(1, 40):
        _, body = await bc.get_json(f"/conversations/{cid}")
        conversation = Conversation.model_validate(body)
        current = conversation.advisor_id
        for event in conversation.events:
            if isinstance(event.data, TransferData):
                assert event.data.old_advisor_id != current
                assert event.data.new_advisor_id != current
                current = event.data.new_advisor_id
                wrong += 1
    assert wrong > 0
    assert len(await quirks(bc, "wrong_old_advisor")) >= wrong
