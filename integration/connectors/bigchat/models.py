"""BigChat's payloads as the contract defines them. Strict: a string where an int belongs, a float
timestamp, an unknown event name are refused, not coerced, so bad input is dead-lettered with a
reason instead of being applied as something it is not."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)


class EventName(StrEnum):
    START = "START"
    MESSAGE = "MESSAGE"
    TRANSFER = "TRANSFER"
    END = "END"


class MessageData(BaseModel):
    model_config = ConfigDict(frozen=True)
    message: StrictStr


class TransferData(BaseModel):
    model_config = ConfigDict(frozen=True)
    old_advisor_id: StrictInt
    new_advisor_id: StrictInt = Field(gt=0)


def _typed(model: type[BaseModel], data: Any, name: str) -> BaseModel:
    """``data`` as the model its event name implies, or an error naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(["data", *(str(p) for p in err["loc"])])
        raise ValueError(f"{name} {where}: {err['msg']}") from None


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    conversation_id: StrictInt = Field(gt=0)
    event_name: EventName
    event_at: StrictInt = Field(ge=0)
    data: MessageData | TransferData | None = None

    @model_validator(mode="before")
    @classmethod
    def _data_matches_name(cls, raw: Any) -> Any:
        # Validate data against the schema its event_name implies, so a MESSAGE whose data is
        # a transfer (or vice versa) is refused rather than matched to the wrong union member.
        if not isinstance(raw, dict):
            return raw
        name, data = raw.get("event_name"), raw.get("data")
        if name == "MESSAGE":
            return {**raw, "data": _typed(MessageData, data, name)}
        if name == "TRANSFER":
            return {**raw, "data": _typed(TransferData, data, name)}
        if name in ("START", "END"):
            return {**raw, "data": None}  # the contract says null; anything else is ignored
        return raw

    @property
    def message(self) -> str:
        assert isinstance(self.data, MessageData)
        return self.data.message

    @property
    def transfer(self) -> TransferData:
        assert isinstance(self.data, TransferData)
        return self.data


class EventsPage(BaseModel):
    """One page of ``/events``. Events are kept raw here and validated one by one, so a single
    bad event is dead-lettered without losing the rest of its page."""

    nextPageUrl: StrictStr | None = None  # the contract's spelling
    events: list[Any]


class Conversation(BaseModel):
    conversation_id: StrictInt
    advisor_id: StrictInt
    events: list[Any]


class Advisor(BaseModel):
    advisor_id: StrictInt
    name: StrictStr
    email_address: StrictStr
