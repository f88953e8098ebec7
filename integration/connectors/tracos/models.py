"""The TracOS work-order document as stored in MongoDB.

Lenient where real collections vary (dates as BSON dates, naive or aware, or as ISO strings;
``isSynced`` and ``description`` absent on documents other tools created), strict where a wrong
value would be synced as something it is not (an unknown status, a number that is not an int).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from bson import ObjectId
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt


class Status(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"


def as_utc(value: Any) -> Any:
    """A BSON date (naive means UTC, as the driver returns it) or an ISO 8601 string, as an
    aware UTC datetime truncated to milliseconds: MongoDB keeps milliseconds only, so anything
    finer would make a value read back differ from the one written."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value  # let pydantic report it as a bad datetime
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(as_utc)]


class TracosWorkOrder(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="ignore", arbitrary_types_allowed=True, populate_by_name=True
    )

    id: ObjectId | None = Field(default=None, alias="_id")
    number: StrictInt
    status: Status
    title: str
    description: str = ""
    createdAt: UtcDatetime
    updatedAt: UtcDatetime
    deleted: StrictBool = False
    deletedAt: UtcDatetime | None = None
    isSynced: StrictBool | None = None
    syncedAt: UtcDatetime | None = None


class TracosChanges(BaseModel):
    """What an ERP file says about a work order, in TracOS terms: the fields an inbound upsert
    sets. ``description`` has no ERP counterpart, so an update leaves it alone."""

    model_config = ConfigDict(frozen=True)

    number: int
    status: Status
    title: str
    createdAt: datetime
    updatedAt: datetime
    deleted: bool
    deletedAt: datetime | None
