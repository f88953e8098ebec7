"""The case store's boundary: the synced fields as pydantic validates them, and the row answer.

The synced fields carry the Intempus names and the rules Intempus applies to them (name
required and not blank, customer required, decimals of fixed scale within range, dates as
``YYYY-MM-DD``, an end date only with a start date, a geofence only with coordinates), so bad
data is refused here rather than dead-lettered later by the sync. Relations are plain ints.
Values come back in canonical form: decimals as fixed-scale strings, ``""`` for a nulled
address string or ``notes``.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

SYNCED_FIELDS: tuple[str, ...] = (
    "number", "name", "customer", "active", "permit_new_workreports",
    "all_employees_may_add_work_reports", "all_worktypes_may_used_in_work_reports",
    "remarks_required", "file_upload_required", "geofence", "case_group", "case_state",
    "department", "responsible", "co_responsible", "parent", "start_date", "end_date",
    "street_address", "zip_code", "city", "country", "notes", "latitude", "longitude",
    "hour_budget",
)  # fmt: skip
READ_ONLY = frozenset(
    {"id", "version", "origin", "deleted", "created_at", "updated_at", "deleted_at"}
)
BLANK_STRINGS = ("street_address", "zip_code", "city", "country", "notes")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RelationId = Annotated[StrictInt, Field(gt=0)]


def _decimal(value: Any, places: int, bound: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a decimal number or a decimal string")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"invalid decimal string: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"invalid decimal string: {value!r}")
    if abs(number) > bound:
        raise ValueError(f"must be between -{bound} and {bound}")
    return str(number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


class CaseFields(BaseModel):
    """A whole case as written (create, or the merged result of a PATCH)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    number: str = Field("", max_length=100)
    name: str = Field(min_length=1, max_length=255)
    customer: RelationId
    active: StrictBool = True
    permit_new_workreports: StrictBool = True
    all_employees_may_add_work_reports: StrictBool = False
    all_worktypes_may_used_in_work_reports: StrictBool = True
    remarks_required: StrictBool | None = None
    file_upload_required: StrictBool = False
    geofence: StrictBool = False
    case_group: RelationId | None = None
    case_state: RelationId | None = None
    department: RelationId | None = None
    responsible: RelationId | None = None
    co_responsible: RelationId | None = None
    parent: RelationId | None = Field(None, description="a local case id")
    start_date: str | None = Field(None, description="YYYY-MM-DD")
    end_date: str | None = Field(None, description="YYYY-MM-DD; needs start_date")
    street_address: str = ""
    zip_code: str = ""
    city: str = ""
    country: str = ""
    notes: str = ""
    latitude: str | None = Field(None, description="6 decimal places, -90..90")
    longitude: str | None = Field(None, description="6 decimal places, -180..180")
    hour_budget: str | None = Field(None, description="2 decimal places")
    intempus_id: RelationId | None = Field(None, description="the linked Intempus case id")

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator(*BLANK_STRINGS, mode="before")
    @classmethod
    def _null_is_blank(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _DATE.match(value):
            raise ValueError("must be a date as YYYY-MM-DD")
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("must be a date as YYYY-MM-DD") from None

    @field_validator("latitude", mode="before")
    @classmethod
    def _latitude(cls, value: Any) -> str | None:
        return _decimal(value, 6, 90)

    @field_validator("longitude", mode="before")
    @classmethod
    def _longitude(cls, value: Any) -> str | None:
        return _decimal(value, 6, 180)

    @field_validator("hour_budget", mode="before")
    @classmethod
    def _hour_budget(cls, value: Any) -> str | None:
        return _decimal(value, 2, 99_999_999)

    @model_validator(mode="after")
    def _dependent_fields(self) -> Self:
        if self.end_date is not None and self.start_date is None:
            raise ValueError("end_date: needs a start_date")
        if self.geofence and (self.latitude is None or self.longitude is None):
            raise ValueError("geofence: needs latitude and longitude")
        return self


class CaseRow(CaseFields):
    """A case as the store answers it (tombstones too, with ``deleted`` true)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    version: int
    origin: str
    deleted: bool
    created_at: str
    updated_at: str
    deleted_at: str | None


class Feed(BaseModel):
    """``GET /cases/changes``: rows and tombstones in version order."""

    items: list[CaseRow]
    next_after: int
    high_water: int


class CaseList(BaseModel):
    """``GET /cases/``: live rows in id order."""

    items: list[CaseRow]
    next_after_id: int | None
    high_water: int
