"""The shapes BigChat's contract defines, as pydantic models.

The server renders its answers through these models and the tests parse answers with them, so a
shape that drifts from the contract fails on both sides. ``extra="forbid"`` keeps the ``data``
union unambiguous: a MESSAGE's data can never be read as a TRANSFER's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventName = Literal["START", "MESSAGE", "TRANSFER", "END"]


class MessageData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str


class TransferData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_advisor_id: int
    new_advisor_id: int


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: int
    event_name: EventName
    event_at: int = Field(description="Unix seconds, UTC")
    data: MessageData | TransferData | None


class EventsPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nextPageUrl: str | None  # the contract's spelling
    events: list[Event]


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: int
    advisor_id: int = Field(description="the advisor the conversation started with")
    events: list[Event]


class Advisor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advisor_id: int
    name: str
    email_address: str
