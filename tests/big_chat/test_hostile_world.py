"""The harsher world knobs: repeated texts, same-second events, TRANSFERs before the START, a
MESSAGE long after the END. Each does what it says; with them off the world is unchanged."""

from __future__ import annotations

from collections import Counter

import pytest

from big_chat.models import MessageData
from big_chat.settings import WorldSettings
from big_chat.truth import expected_chat
from big_chat.world import BEFORE_START_MAX_S, SHORT_TEXTS, World
from tests.big_chat.conftest import EPOCH, HOUR, Start

NOW = EPOCH + HOUR


def make(**kw: object) -> World:
    return World(WorldSettings.model_validate(kw), EPOCH)


def test_a_zero_minimum_gap_puts_events_of_a_conversation_in_the_same_second() -> None:
    world = make(message_gap_min_s=0, message_gap_max_s=1, messages_min=5, messages_max=8)
    same = 0
    for script in world.iter_scripts(EPOCH + 600):
        times = [e.event_at for e in script.events]
        same += len(times) - len(set(times))
    assert same > 0


async def test_repeated_texts_in_the_same_second_are_served_as_two_events(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(
        repeat_text_rate=1.0, same_second_rate=1.0, messages_min=3, messages_max=6
    )
    events = await bc.window(NOW - 600, NOW)
    stripped = Counter(
        (e.conversation_id, e.event_at, e.data.message.strip())
        for e in events
        if isinstance(e.data, MessageData)
    )
    assert max(stripped.values()) >= 2


def test_repeated_texts_differ_at_most_by_whitespace_and_include_short_ones() -> None:
    world = make(repeat_text_rate=0.5, messages_min=6, messages_max=10)
    padded = short = 0
    for script in world.iter_scripts(EPOCH + 900):
        earlier: set[str] = set()
        for event in script.events:
            if event.event_name != "MESSAGE" or event.message is None:
                continue
            text = event.message
            quirk = [q.kind for q in script.quirks if q.event == event]
            if quirk == ["repeat_text"]:
                assert text.strip() in earlier
            padded += text != text.strip()
            short += text.strip() in SHORT_TEXTS
            earlier.add(text.strip())
    assert padded > 0 and short > 0


def test_same_second_rate_gives_two_transfers_in_one_second() -> None:
    world = make(same_second_rate=1.0, transfer_probability=1.0, advisors=4)
    script = world.script(1)
    transfers = [e.event_at for e in script.events if e.event_name == "TRANSFER"]
    assert len(transfers) >= 2 and len(set(transfers)) == 1
    assert {e.event_at for e in script.events if e.event_name != "END"} == {script.start_at}


def test_a_transfer_dated_before_start_replaces_the_transfers_and_decides_the_agent() -> None:
    world = make(transfer_before_start_rate=1.0, transfer_probability=1.0, advisors=5)
    for script in world.iter_scripts(EPOCH + 600):
        [transfer] = [e for e in script.events if e.event_name == "TRANSFER"]
        assert 1 <= script.start_at - transfer.event_at <= BEFORE_START_MAX_S
        # Its own order keeps it after the START although it is dated before.
        assert [e.event_name for e in script.events[:2]] == ["START", "TRANSFER"]
        assert transfer.old_advisor_id == script.advisor_id != transfer.new_advisor_id
        assert expected_chat(script, NOW).advisor_id == transfer.new_advisor_id


async def test_a_transfer_dated_before_start_is_served_once_its_conversation_has_started(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(transfer_before_start_rate=1.0, transfer_probability=1.0)
    script = next(s for s in bc.world.iter_scripts(NOW + 600) if s.start_at > NOW)
    [transfer] = [e for e in script.events if e.event_name == "TRANSFER"]
    assert transfer.event_at < script.start_at
    bc.clock.now = script.start_at - 0.5  # the transfer's time has passed, the START's not yet
    window = await bc.window(transfer.event_at - 5, bc.clock.now)
    assert transfer.to_model() not in window
    bc.clock.now = script.start_at + 1
    later = await bc.window(script.start_at - 0.5, bc.clock.now)
    assert transfer.to_model() in later
    [record] = [r for r in bc.log.of_kind("late_visible") if r.event == transfer]
    assert record.window is not None and record.window.start_at > transfer.event_at


def test_after_end_delay_puts_the_after_end_message_that_long_after_the_end() -> None:
    world = make(after_end_rate=1.0, after_end_delay_s=3600, message_gap_max_s=30)
    for script in world.iter_scripts(EPOCH + 600):
        end = min(e.event_at for e in script.events if e.event_name == "END")
        [late] = [q.event for q in script.quirks if q.kind == "after_end"]
        assert 3600 <= late.event_at - end <= 3600 + 30
        assert late.event_at - script.start_at <= world.max_duration


def test_the_harsh_knobs_leave_the_texts_of_the_plain_world_unchanged() -> None:
    plain = make(seed=4, transfer_probability=0.5)
    harsh = make(seed=4, transfer_probability=0.5, same_second_rate=0.5)
    for cid in range(1, 100):
        texts = [e.message for e in plain.script(cid).events if e.event_name == "MESSAGE"]
        again = [e.message for e in harsh.script(cid).events if e.event_name == "MESSAGE"]
        assert texts == again


async def test_truth_lists_the_expected_chat_of_each_conversation(start_big_chat: Start) -> None:
    now = EPOCH + 900
    bc = await start_big_chat(
        now=now, repeat_text_rate=0.5, repeat_end_rate=1.0, transfer_probability=0.5
    )
    status, body = await bc.get_json("/_standin/truth")
    assert status == 200
    assert [c["conversation_id"] for c in body["conversations"]] == list(
        bc.world.conversation_ids(now)
    )
    some = next(
        c
        for c in body["conversations"]
        if sum(h["event"]["event_name"] == "END" for h in c["history"]) >= 2
    )
    history = [h["event"] for h in some["history"]]
    ends = [e["event_at"] for e in history if e["event_name"] == "END"]
    texts = sorted(
        [e["event_at"], e["data"]["message"].strip()]
        for e in history
        if e["event_name"] == "MESSAGE"
    )
    assert some["expected"]["ended_at"] == min(ends)
    assert some["expected"]["messages"] == texts
    assert some["expected"]["started_at"] == history[0]["event_at"]


@pytest.mark.parametrize("now", [EPOCH + 1290, EPOCH + 1400], ids=["open-window", "past-window"])
def test_a_window_finds_every_visible_event_of_a_harsh_world(now: float) -> None:
    world = make(
        conversation_rate=1,
        transfer_before_start_rate=0.5,
        transfer_probability=0.5,
        same_second_rate=0.3,
        repeat_text_rate=0.3,
        message_gap_min_s=0,
    )
    lo, hi = EPOCH + 1000, EPOCH + 1300
    everything = [e for s in world.iter_scripts(now + 600) for e in s.events]
    expected = sorted(
        (e for e in everything if lo <= e.event_at < hi and e.available_at <= now),
        key=lambda e: e.sort_key,
    )
    assert any(e.is_late for e in expected)
    assert world.events_between(lo, hi, now) == expected
