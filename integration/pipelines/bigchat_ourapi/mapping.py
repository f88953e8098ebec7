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
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError, model_validator

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

    The assignment in force is the conversation's advisor until a TRANSFER is applied, then the
    latest TRANSFER by (``event_at``, the conversation's own order): ``agent_since`` is its time
    (None for the conversation's own advisor, which any TRANSFER overrides, even one dated before
    the START) and ``agent_transfer`` its (old, new) advisors, so a TRANSFER that arrives late does
    not undo a newer one, and a tie in one second can be settled.
    """

    conversation_id: int
    advisor_id: int
    started_at: int
    start_known: bool
    """False when BigChat never showed a START: started_at is then the earliest event seen."""
    agent_since: int | None = None
    agent_transfer: tuple[int, int] | None = None
    agent_seq: int | None = None
    """Inbox order of the deciding TRANSFER: the last resort for a tie in one second."""
    agent_pending: bool = False
    """The chat's agent is not the one the assignment in force asks for: its advisor could not be
    made an agent (BigChat does not know it, OurAPI refuses it). Tried again as events come."""
    agent_problem_seq: int | None = None
    """The inbox entry that carries the agent problem as a (non-blocking) dead letter."""
    ended_at: int | None = None
    chat_id: UUID | None = None
    chat_ended_at: int | None = None
    """The ended_at OurAPI holds, so a repeated END costs no request."""
    chat_agent_id: UUID | None = None
    """The agent OurAPI holds, so a TRANSFER to the same agent costs no request."""
    adopted: bool = False
    """The chat existed before this worker created it (an earlier state, a lost answer): its
    messages are read back before posting, so none is posted twice."""

    @model_validator(mode="before")
    @classmethod
    def _from_earlier_versions(cls, data: Any) -> Any:
        # States written before the assignment rules above set agent_since to the start when no
        # TRANSFER had been applied: read that as "the conversation's own advisor".
        if (
            isinstance(data, dict)
            and "agent_transfer" not in data
            and data.get("agent_since") == data.get("started_at")
        ):
            data = {**data, "agent_since": None}
        return data


def external_id(conversation_id: int) -> str:
    return str(conversation_id)


def fingerprint(event: Event, occurrence: int = 0) -> str:
    """Identity of an event, which BigChat does not give: the same event served twice (a
    duplicate, a late copy, the conversation's history) has the same fingerprint.

    Two events can be identical in every field (a customer typing "ok" twice in one second), so
    identity also counts occurrences: the n-th identical event within one answer (a window's
    pages, or a conversation's history) is occurrence n. The first occurrence keeps the plain
    fingerprint, so states written before occurrences were counted still de-duplicate.
    """
    data = event.data.model_dump() if event.data is not None else None
    raw = dumps([event.conversation_id, event.event_name.value, event.event_at, data])
    plain = hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()
    return plain if occurrence == 0 else f"{plain}#{occurrence}"


def count_occurrences(entries: Iterable[NewEntry], seen: Counter[str]) -> list[NewEntry]:
    """``entries`` with each fingerprint numbered by occurrence, counting what ``seen`` already
    holds (the earlier pages of the same answer); ``seen`` is updated."""
    numbered = []
    for entry in entries:
        n = seen[entry.fingerprint]
        seen[entry.fingerprint] += 1
        numbered.append(replace(entry, fingerprint=f"{entry.fingerprint}#{n}") if n else entry)
    return numbered


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
        return _rejected(raw, exc)
    return entry_for(event)


def _rejected(raw: Any, exc: ValueError) -> Rejected:
    text = dumps(raw)
    key = raw.get("conversation_id") if isinstance(raw, dict) else None
    return Rejected(
        key=str(key) if isinstance(key, int) else "?",
        fingerprint="invalid:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest(),
        payload=text,
        reason=str(exc),
    )


def to_entries(
    raw_events: Iterable[object], now: float, seen: Counter[str]
) -> tuple[list[NewEntry], list[Rejected]]:
    """Raw events of one answer as inbox entries, numbered by occurrence after what ``seen``
    already counts of that answer (``seen`` is updated), and rejects with their reasons."""
    entries, rejects, _ = to_events(raw_events, now, seen)
    return entries, rejects


def to_events(
    raw_events: Iterable[object], now: float, seen: Counter[str]
) -> tuple[list[NewEntry], list[Rejected], list[Event]]:
    """``to_entries``, with the validated event of each entry (in the same order): a caller
    that needs the events too need not validate the entries' payloads a second time."""
    entries: list[NewEntry] = []
    events: list[Event] = []
    rejects: list[Rejected] = []
    for raw in raw_events:
        try:
            event = parse_event(raw, now)
        except ValueError as exc:
            rejects.append(_rejected(raw, exc))
            continue
        events.append(event)
        entries.append(entry_for(event))
    return count_occurrences(entries, seen), rejects, events


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


MessageKey = tuple[int, str]
"""What identifies a message in OurAPI, which has no key of its own: its time (Unix seconds) and
its text as OurAPI stores it (trimmed)."""


def message_key(event: Event) -> MessageKey:
    return (event.event_at, event.message.strip())


def held_messages(messages: Iterable[Message]) -> Counter[MessageKey]:
    """The customer messages (no agent) OurAPI holds, read back, counted by ``MessageKey``."""
    return Counter((int(m.sent_at.timestamp()), m.text) for m in messages if m.agent_id is None)
