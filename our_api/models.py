"""Request and response bodies of the OurAPI contract, as pydantic models.

Request validation errors become 422 bodies in FastAPI's shape (see ``errors.py``), so the
constraints here are the contract's: stripped strings of at least 2 characters, ``external_id``
a JSON string, datetimes with their offset *dropped* (not converted), as the real service does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictStr,
    StringConstraints,
    field_validator,
)


def _drop_offset(value: datetime) -> datetime:
    # The real OurAPI keeps the wall-clock reading and forgets the offset: 03:00+02:00 -> 03:00.
    return value.replace(tzinfo=None)


OurDatetime = Annotated[datetime, AfterValidator(_drop_offset)]
"""A datetime as OurAPI stores it: naive, offset dropped."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2)]
"""A string stripped of surrounding whitespace that must keep at least 2 characters."""


class ChatCreate(BaseModel):
    """Body of ``POST /chats``."""

    external_id: StrictStr
    started_at: OurDatetime
    ended_at: OurDatetime | None = None
    agent_id: UUID | None = None


class ChatUpdate(BaseModel):
    """Body of ``PATCH /chats/{chat_id}``: only the fields sent are changed."""

    agent_id: UUID | None = None
    started_at: OurDatetime | None = None
    ended_at: OurDatetime | None = None

    @field_validator("started_at")
    @classmethod
    def _started_at_not_null(cls, value: datetime | None) -> datetime | None:
        # A chat always has a start; a null sent explicitly would break that (this validator only
        # runs for values that were sent, so leaving the field out stays allowed).
        if value is None:
            raise ValueError("started_at may be left out but not set to null")
        return value


class MessageCreate(BaseModel):
    """Body of ``POST /chats/{chat_id}/messages``."""

    sent_at: OurDatetime
    text: ShortText
    agent_id: UUID | None = None


class AgentCreate(BaseModel):
    """Body of ``POST /agents``."""

    name: ShortText
    email: ShortText


class Chat(BaseModel):
    """A chat as OurAPI returns it."""

    model_config = ConfigDict(frozen=True)

    chat_id: UUID
    external_id: str
    started_at: datetime
    ended_at: datetime | None
    agent_id: UUID | None


class Message(BaseModel):
    """A message as OurAPI returns it."""

    model_config = ConfigDict(frozen=True)

    message_id: UUID
    chat_id: UUID
    agent_id: UUID | None
    sent_at: datetime
    text: str


class Agent(BaseModel):
    """An agent as OurAPI returns it."""

    model_config = ConfigDict(frozen=True)

    agent_id: UUID
    name: str
    email: str
