"""BigChat → OurAPI mapping rules, one per test."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from integration.connectors.bigchat.models import Event
from integration.connectors.ourapi.models import Message
from integration.core.store import NewEntry, Rejected
from integration.pipelines.bigchat_ourapi.mapping import (
    chat_create,
    external_id,
    fingerprint,
    held_messages,
    initial_state,
    message_create,
    message_key,
    parse_event,
    text_is_acceptable,
    to_entry,
)

NOW = 1_800_000_000


def event(name: str, at: int, data: dict | None = None, cid: int = 7) -> Event:
    return Event.model_validate(
        {"conversation_id": cid, "event_name": name, "event_at": at, "data": data}
    )


def test_a_conversation_maps_to_a_chat_whose_external_id_is_its_id_as_a_string() -> None:
    assert external_id(42) == "42"


def test_the_chat_starts_at_the_start_event_and_ends_at_the_first_end() -> None:
    history = [
        event("START", 100),
        event("END", 300),
        event("END", 200),
        event("MESSAGE", 150, {"message": "hi there"}),
    ]
    state = initial_state(7, advisor_id=3, history=history)

    assert (state.started_at, state.start_known, state.ended_at) == (100, True, 200)


def test_without_a_start_event_the_earliest_event_stands_in_for_the_start() -> None:
    state = initial_state(7, 3, [event("MESSAGE", 150, {"message": "hello"}), event("END", 400)])

    assert (state.started_at, state.start_known) == (150, False)


def test_chat_create_sends_utc_datetimes_with_an_explicit_offset() -> None:
    state = initial_state(7, 3, [event("START", 1_700_000_000)])
    agent = uuid4()

    body = chat_create(state, agent).model_dump(mode="json", exclude_unset=True)

    assert body == {
        "external_id": "7",
        "started_at": "2023-11-14T22:13:20+00:00",
        "ended_at": None,
        "agent_id": str(agent),
    }


def test_a_message_maps_to_a_customer_message_at_its_event_time() -> None:
    body = message_create(event("MESSAGE", 1_700_000_000, {"message": "Olá 👋"}))

    assert body.model_dump(mode="json") == {
        "sent_at": "2023-11-14T22:13:20+00:00",
        "text": "Olá 👋",
        "agent_id": None,
    }


def test_messages_read_back_count_by_time_and_stripped_text_leaving_agents_out() -> None:
    ev = event("MESSAGE", 1_700_000_000, {"message": "  hello  "})
    stored = Message(
        message_id=uuid4(),
        chat_id=uuid4(),
        agent_id=None,
        sent_at=datetime(2023, 11, 14, 22, 13, 20),  # OurAPI answers without an offset: UTC
        text="hello",
    )

    other_text = stored.model_copy(update={"text": "hello!"})
    an_agents = stored.model_copy(update={"agent_id": uuid4()})

    assert held_messages([stored, other_text, an_agents])[message_key(ev)] == 1


def test_the_same_event_served_twice_has_the_same_fingerprint() -> None:
    a = event("MESSAGE", 100, {"message": "same"})
    b = Event.model_validate_json(a.model_dump_json())

    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(event("MESSAGE", 101, {"message": "same"}))
    assert fingerprint(event("END", 100)) != fingerprint(event("END", 101))


@pytest.mark.parametrize(
    "text, acceptable", [("ok", True), (" k ", False), ("", False), ("   ", False), ("👋👋", True)]
)
def test_texts_shorter_than_two_characters_once_trimmed_are_not_acceptable(
    text: str, acceptable: bool
) -> None:
    assert text_is_acceptable(text) is acceptable


@pytest.mark.parametrize(
    "raw, reason",
    [
        (
            {"conversation_id": "7", "event_name": "START", "event_at": 1, "data": None},
            "conversation_id",
        ),
        ({"conversation_id": 7, "event_name": "TYPING", "event_at": 1, "data": None}, "event_name"),
        ({"conversation_id": 7, "event_name": "START", "event_at": 1.5, "data": None}, "event_at"),
        ({"conversation_id": 7, "event_name": "START", "event_at": -1, "data": None}, "event_at"),
        (
            {"conversation_id": 7, "event_name": "MESSAGE", "event_at": 1, "data": None},
            "MESSAGE data",
        ),
        (
            {"conversation_id": 7, "event_name": "MESSAGE", "event_at": 1, "data": {"message": 5}},
            "message",
        ),
        (
            {
                "conversation_id": 7,
                "event_name": "TRANSFER",
                "event_at": 1,
                "data": {"old_advisor_id": 1},
            },
            "new_advisor_id",
        ),
        ({"event_name": "START", "event_at": 1, "data": None}, "conversation_id"),
        ([1, 2, 3], "dictionary"),
    ],
)
def test_a_malformed_event_is_refused_with_a_reason_naming_the_field(
    raw: object, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_event(raw, NOW)


def test_an_event_dated_far_in_the_future_is_refused() -> None:
    with pytest.raises(ValueError, match="in the future"):
        parse_event(
            {"conversation_id": 7, "event_name": "END", "event_at": NOW + 10 * 86400, "data": None},
            NOW,
        )


def test_a_valid_event_becomes_an_inbox_entry_keyed_by_its_conversation() -> None:
    entry = to_entry(
        {"conversation_id": 7, "event_name": "END", "event_at": 100, "data": None}, NOW
    )

    assert isinstance(entry, NewEntry)
    assert (entry.key, entry.kind, entry.occurred_at) == ("7", "END", 100.0)


def test_a_malformed_event_becomes_a_reject_kept_with_its_payload_and_reason() -> None:
    entry = to_entry({"conversation_id": 7, "event_name": "NOPE", "event_at": 100}, NOW)

    assert isinstance(entry, Rejected)
    assert entry.key == "7"
    assert "event_name" in entry.reason
    assert '"NOPE"' in entry.payload


def test_start_and_end_ignore_data_they_should_not_carry() -> None:
    assert event("END", 5, {"unexpected": True}).data is None


def test_utc_helper_is_aware() -> None:
    assert chat_create(initial_state(1, 1, [event("START", 0)]), None).started_at == datetime(
        1970, 1, 1, tzinfo=UTC
    )
