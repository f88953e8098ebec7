"""Ground truth: what OurAPI must hold for each conversation, derived from its history alone.

This is the contract's mapping applied to the full history (whatever ``history_mode`` shows):

- ``started_at``: the START (the first one in the conversation's own order);
- ``ended_at``: the first END by time, or None;
- ``advisor_id``: the ``new_advisor_id`` of the last TRANSFER by ``(event_at, position)``, else
  the conversation's own ``advisor_id``;
- ``messages``: the multiset of ``(event_at, stripped text)``, listed sorted.

Only events visible by ``now`` count: a late event is not truth until it could be served.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from big_chat.models import Event
from big_chat.view import WorldView
from big_chat.world import Script, ScriptEvent


class ExpectedChat(BaseModel):
    """The chat state a correct sync holds for one conversation."""

    model_config = ConfigDict(extra="forbid")

    started_at: int
    ended_at: int | None
    advisor_id: int = Field(description="the advisor whose agent the chat must have")
    messages: list[tuple[int, str]] = Field(description="(event_at, stripped text), sorted")


class HistoryEvent(BaseModel):
    """An event of the full history, with what the stand-in knows about it and clients do not."""

    model_config = ConfigDict(extra="forbid")

    position: int = Field(description="place in the conversation's own order")
    event: Event
    visible_at: float
    in_feed: bool


class ConversationTruth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: int
    advisor_id: int = Field(description="the advisor the conversation started with")
    history: list[HistoryEvent] = Field(description="every visible event, in own order")
    expected: ExpectedChat


class WorldTruth(BaseModel):
    """The body of ``GET /_standin/truth``."""

    model_config = ConfigDict(extra="forbid")

    now: float
    conversations: list[ConversationTruth]


def expected_chat(script: Script, now: float) -> ExpectedChat:
    happened = script.happened(now)
    start = next((e.event_at for e in happened if e.event_name == "START"), script.start_at)
    ends = [e.event_at for e in happened if e.event_name == "END"]
    transfers = [e for e in happened if e.event_name == "TRANSFER"]
    last = max(transfers, key=lambda e: (e.event_at, e.position), default=None)
    agent = (
        script.advisor_id if last is None or last.new_advisor_id is None else last.new_advisor_id
    )
    messages = sorted(
        (e.event_at, e.message.strip())
        for e in happened
        if e.event_name == "MESSAGE" and e.message is not None
    )
    return ExpectedChat(
        started_at=start, ended_at=min(ends, default=None), advisor_id=agent, messages=messages
    )


def _history_event(event: ScriptEvent) -> HistoryEvent:
    return HistoryEvent(
        position=event.position,
        event=event.to_model(),
        visible_at=event.available_at,
        in_feed=event.in_feed,
    )


def conversation_truth(script: Script, now: float) -> ConversationTruth:
    return ConversationTruth(
        conversation_id=script.conversation_id,
        advisor_id=script.advisor_id,
        history=[_history_event(e) for e in script.happened(now)],
        expected=expected_chat(script, now),
    )


def world_truth(world: WorldView, now: float) -> WorldTruth:
    """Every conversation that exists by ``now``."""
    return WorldTruth(
        now=now, conversations=[conversation_truth(s, now) for s in world.iter_scripts(now)]
    )
