"""The ERP's work-order file, ``{orderNo}.json``.

Strict: a string where a bool or an int belongs is refused, not coerced, so a file that does not
say what it means is set aside with the reason instead of being applied as something else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer


def _utc(value: datetime) -> datetime:
    # Offsets vary between ERP installations; a time without one is read as UTC. Milliseconds
    # only, as MongoDB keeps them, so a file sent back and forth compares equal.
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def render(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``: one spelling for every date we write."""
    value = _utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


ErpDatetime = Annotated[datetime, AfterValidator(_utc), PlainSerializer(render, return_type=str)]


class ErpWorkOrder(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    orderNo: int
    isActive: bool | None = None
    isCanceled: bool
    isDeleted: bool
    isDone: bool
    isOnHold: bool
    isPending: bool
    isSynced: bool | None = None
    summary: str
    creationDate: ErpDatetime
    lastUpdateDate: ErpDatetime
    deletedDate: ErpDatetime | None = None
