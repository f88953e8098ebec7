"""OurAPI's bodies. Datetimes go out as UTC with an explicit offset (OurAPI drops offsets rather
than converting them, so anything but UTC would be stored wrong) and come back naive, meaning UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(lambda v: _as_utc(v).isoformat(), return_type=str),
]


class ChatCreate(BaseModel):
    external_id: str
    started_at: UtcDatetime
    ended_at: UtcDatetime | None = None
    agent_id: UUID | None = None


class ChatUpdate(BaseModel):
    """Only the fields set are sent (OurAPI changes only the fields it is sent)."""

    agent_id: UUID | None = None
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None


class Chat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chat_id: UUID
    external_id: str
    started_at: UtcDatetime
    ended_at: UtcDatetime | None = None
    agent_id: UUID | None = None


class MessageCreate(BaseModel):
    sent_at: UtcDatetime
    text: str
    agent_id: UUID | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message_id: UUID
    chat_id: UUID
    agent_id: UUID | None = None
    sent_at: UtcDatetime
    text: str


class AgentCreate(BaseModel):
    name: str
    email: str


class Agent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    agent_id: UUID
    name: str
    email: str
