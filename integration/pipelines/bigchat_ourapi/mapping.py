"""BigChat onto OurAPI, as pure functions: no I/O, so every rule is tested on its own.

| BigChat                                   | OurAPI                                     |
|-------------------------------------------|--------------------------------------------|
| conversation ``conversation_id``           | chat, ``external_id = str(conversation_id)`` |
| ``START.event_at``                        | ``chat.started_at``                        |
| first ``END.event_at``                    | ``chat.ended_at``                          |
| conversation's advisor, then each TRANSFER | ``chat.agent_id`` (agent of that advisor)  |
| advisor                                   | agent with the same e-mail and name        |
| ``MESSAGE``                               | message: sent_at, text, agent_id null      |
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from ...connectors.bigchat.models import Event, EventName
from ...connectors.ourapi.models import ChatCreate, Message, MessageCreate
from ...core.clock import utc
from ...core.store import NewEntry, Rejected, dumps

MIN_TEXT = 2
"""OurAPI refuses message texts shorter than this after stripping whitespace."""

MAX_FUTURE = 24 * 3600
"""An event dated more than this after now is not believed: it is dead-lettered."""


class ConversationState(BaseModel):
    """What the worker knows of one conversation, kept in the state store.

    ``agent_since`` is the time of the assignment in force (the start, then the latest TRANSFER
    applied), so a TRANSFER that arrives late does not undo a newer one.
    """

    conversation_id: int
    advisor_id: int
    started_at: int
    start_known: bool
    """False when BigChat never showed a START: started_at is then the earliest event seen."""
    agent_since: int
    ended_at: int | None = None
    chat_id: UUID | None = None
    chat_ended_at: int | None = None
    """The ended_at OurAPI holds, so a repeated END costs no request."""
    chat_agent_id: UUID | None = None
    """The agent OurAPI holds, so a TRANSFER to the same agent costs no request."""
    adopted: bool = False
    """The chat existed before this worker created it (an earlier state, a lost answer): its
    messages are read back once before posting, so none is posted twice."""


def external_id(conversation_id: int) -> str:
    return str(conversation_id)


def fingerprint(event: Event) -> str:
    """Identity of an event, which BigChat does not give: the same event served twice (a
    duplicate, a late copy, the conversation's history) has the same fingerprint."""
    data = event.data.model_dump() if event.data is not None else None
    raw = dumps([event.conversation_id, event.event_name.value, event.event_at, data])
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def describe(exc: ValidationError) -> str:
    """A validation error as one line a person can act on."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid event: " + "; ".join(parts)


def parse_event(raw: Any, now: float) -> Event:
    """Validate one raw event; raises ``ValueError`` with a readable reason."""
    try:
        event = Event.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None
    if event.event_at > now + MAX_FUTURE:
        ahead = int(event.event_at - now)
        raise ValueError(f"invalid event: event_at {event.event_at} is {ahead} s in the future")
    return event


def to_entry(raw: Any, now: float) -> NewEntry | Rejected:
    """A raw event as an inbox entry, or as a reject with its reason."""
    try:
        event = parse_event(raw, now)
    except ValueError as exc:
        text = dumps(raw)
        key = raw.get("conversation_id") if isinstance(raw, dict) else None
        return Rejected(
            key=str(key) if isinstance(key, int) else "?",
            fingerprint="invalid:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest(),
            payload=text,
            reason=str(exc),
        )
    return entry_for(event)


def entry_for(event: Event) -> NewEntry:
    return NewEntry(
        key=str(event.conversation_id),
        kind=event.event_name.value,
        fingerprint=fingerprint(event),
        payload=event.model_dump_json(),
        occurred_at=float(event.event_at),
    )


def initial_state(
    conversation_id: int, advisor_id: int, history: Iterable[Event]
) -> ConversationState:
    """The state of a conversation first seen, from its history on ``/conversations/{id}``."""
    events = list(history)
    starts = [e.event_at for e in events if e.event_name is EventName.START]
    ends = [e.event_at for e in events if e.event_name is EventName.END]
    started = min(starts) if starts else min((e.event_at for e in events), default=0)
    return ConversationState(
        conversation_id=conversation_id,
        advisor_id=advisor_id,
        started_at=started,
        start_known=bool(starts),
        agent_since=started,
        ended_at=min(ends) if ends else None,
    )


def chat_create(state: ConversationState, agent_id: UUID | None) -> ChatCreate:
    return ChatCreate(
        external_id=external_id(state.conversation_id),
        started_at=utc(state.started_at),
        ended_at=utc(state.ended_at) if state.ended_at is not None else None,
        agent_id=agent_id,
    )


def text_is_acceptable(text: str) -> bool:
    return len(text.strip()) >= MIN_TEXT


def message_create(event: Event) -> MessageCreate:
    return MessageCreate(sent_at=utc(event.event_at), text=event.message, agent_id=None)


def message_matches(stored: Message, event: Event) -> bool:
    """Whether a message read back from OurAPI is this event's (OurAPI strips the text)."""
    return (
        int(stored.sent_at.timestamp()) == event.event_at
        and stored.text == event.message.strip()
        and stored.agent_id is None
    )
