"""The simulated world on its own: determinism, shape and quirks, no server involved."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from big_chat.settings import BigChatSettings, WorldSettings
from big_chat.world import World
from tests.big_chat.conftest import EPOCH, HOUR

NOW = EPOCH + HOUR


def make(**kw: object) -> World:
    return World(WorldSettings.model_validate(kw), EPOCH)


def test_same_seed_and_epoch_give_the_same_world() -> None:
    a, b = make(seed=7), make(seed=7)
    assert a.events_between(EPOCH, NOW, NOW) == b.events_between(EPOCH, NOW, NOW)
    assert [a.advisor(i) for i in range(1, 11)] == [b.advisor(i) for i in range(1, 11)]


def test_different_seeds_give_different_worlds() -> None:
    assert make(seed=1).events_between(EPOCH, NOW, NOW) != make(seed=2).events_between(
        EPOCH, NOW, NOW
    )


def test_scripts_do_not_depend_on_generation_order() -> None:
    forward, backward = make(seed=3), make(seed=3)
    ids = range(1, 200)
    first = [forward.script(cid) for cid in ids]
    last = [backward.script(cid) for cid in reversed(ids)][::-1]
    assert first == last


def test_conversation_ids_increase_with_start_time() -> None:
    world = make(conversation_rate=3)
    starts = [world.start_at(cid) for cid in world.conversation_ids(NOW)]
    assert len(starts) > 1000
    assert starts == sorted(starts)
    assert all(EPOCH <= s <= NOW for s in starts)


def test_conversation_rate_is_roughly_respected() -> None:
    world = make(conversation_rate=2)
    assert 0.9 * 2 * HOUR < len(world.conversation_ids(NOW)) < 1.1 * 2 * HOUR


def test_each_script_is_start_messages_transfers_then_end() -> None:
    world = make(messages_min=1, messages_max=6, transfer_probability=0.5)
    transfers = 0
    for script in world.iter_scripts(EPOCH + 600):
        names = [e.event_name for e in script.events]
        assert names[0] == "START" and names[-1] == "END"
        assert names.count("START") == names.count("END") == 1
        assert 1 <= names.count("MESSAGE") <= 6
        times = [e.event_at for e in script.events]
        assert times == sorted(times) and times[0] == script.start_at
        current = script.advisor_id
        for e in script.events:
            if e.event_name == "TRANSFER":
                transfers += 1
                assert e.new_advisor_id is not None
                assert e.old_advisor_id == current != e.new_advisor_id
                current = e.new_advisor_id
    assert transfers > 0


def test_message_texts_are_unique_per_conversation_and_never_too_short() -> None:
    world = make(messages_min=30, messages_max=40, after_end_rate=1.0)
    non_ascii = 0
    for script in world.iter_scripts(EPOCH + 300):
        texts = [e.message for e in script.events if e.event_name == "MESSAGE"]
        assert len(texts) == len(set(texts))
        assert all(t is not None and len(t.strip()) >= 2 for t in texts)
        non_ascii += sum(1 for t in texts if t and not t.isascii())
    assert non_ascii > 0


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    repeat=st.floats(0, 1),
    after=st.floats(0, 1),
    wrong=st.floats(0, 1),
    advisors=st.integers(1, 4),
)
def test_no_two_events_of_a_conversation_are_identical(
    seed: int, repeat: float, after: float, wrong: float, advisors: int
) -> None:
    world = make(
        seed=seed,
        advisors=advisors,
        repeat_end_rate=repeat,
        after_end_rate=after,
        wrong_old_advisor_rate=wrong,
        message_gap_min_s=1,
        message_gap_max_s=2,
        transfer_probability=0.5,
    )
    for script in world.iter_scripts(EPOCH + 120):
        seen = Counter(e.to_model().model_dump_json() for e in script.events)
        assert max(seen.values()) == 1
        assert script.events[-1].event_at - script.start_at <= world.max_duration


def test_advisors_have_unique_names_and_emails() -> None:
    world = make(advisors=1200)  # more than the name combinations: suffixes keep them unique
    advisors = [world.advisor(i) for i in range(1, 1201)]
    assert all(a is not None for a in advisors)
    assert len({a.name for a in advisors if a}) == 1200
    assert len({a.email_address for a in advisors if a}) == 1200
    assert all(a.email_address.isascii() and "@" in a.email_address for a in advisors if a)
    assert world.advisor(0) is None and world.advisor(1201) is None


def test_conversation_shows_only_what_has_happened() -> None:
    world = make()
    script = world.script(1)
    assert world.conversation(1, script.start_at - 1) is None
    middle = script.events[2].event_at
    conversation = world.conversation(1, middle)
    assert conversation is not None
    assert [e.event_at for e in conversation.events] == [
        e.event_at for e in script.events if e.event_at <= middle
    ]


def test_events_between_matches_a_full_scan() -> None:
    world = make(conversation_rate=1, repeat_end_rate=0.3, after_end_rate=0.3)
    everything = [e for s in world.iter_scripts(NOW) for e in s.events if e.event_at <= NOW]
    lo, hi = EPOCH + 1000, EPOCH + 1300
    expected = sorted((e for e in everything if lo <= e.event_at < hi), key=lambda e: e.sort_key)
    assert world.events_between(lo, hi, NOW) == expected
    assert world.events_between(lo, hi, lo + 100) == [e for e in expected if e.event_at <= lo + 100]


def test_every_quirk_is_recorded_in_the_script() -> None:
    world = make(
        repeat_end_rate=0.5, after_end_rate=0.5, missing_start_rate=0.5, wrong_old_advisor_rate=0.5
    )
    kinds = Counter(q.kind for q in world.quirks(EPOCH + 1800))
    assert set(kinds) == {"repeat_end", "after_end", "missing_start", "wrong_old_advisor"}
    for quirk in world.quirks(EPOCH + 1800):
        assert quirk.event in world.script(quirk.conversation_id).events


def test_quirks_leave_the_rest_of_the_script_unchanged() -> None:
    plain = make(seed=5)
    quirky = make(seed=5, repeat_end_rate=1.0, after_end_rate=1.0)
    for cid in range(1, 50):
        base = [(e.event_name, e.event_at, e.message) for e in plain.script(cid).events]
        extra = [(e.event_name, e.event_at, e.message) for e in quirky.script(cid).events]
        assert set(base) <= set(extra)


def test_a_window_generates_only_the_conversations_that_can_reach_it() -> None:
    world = World(BigChatSettings(conversation_rate=5).world_settings(), EPOCH)
    world.events_between(NOW - 60, NOW, NOW)
    # Judged by the work done (scripts generated), not by the clock: the machine may be busy.
    generated = len(world._scripts)
    started = len(world.conversation_ids(NOW))
    assert started > 15_000
    assert generated <= 5 * 1.3 * (60 + world.max_duration) < started / 2
