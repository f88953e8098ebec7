"""Our internal system's boundary: contacts and companies as pydantic validates them, the
writable bookkeeping (``archived``, ``links``, ``born``) and the answers.

Every rule is checked here, so bad data is refused with a 422 naming the field rather than
stored and carried to a CRM by the sync. Relations are plain ints (``company_id``: an internal
company id; the store checks it names a live company).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

ObjectName = Literal["contact", "company"]
OBJECTS: tuple[ObjectName, ...] = ("contact", "company")
ROUTES: dict[ObjectName, str] = {"contact": "contacts", "company": "companies"}
READ_ONLY = frozenset(
    {"id", "object", "version", "origin", "deleted", "created_at", "updated_at", "deleted_at"}
)
"""Keys a client may send back as it read them: ignored, never written."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
CONNECTION_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
ConnectionName = Annotated[str, Field(pattern=CONNECTION_PATTERN)]
ProviderId = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Text = Annotated[StrictStr, Field(max_length=255)]


def _custom_value(value: Any) -> Any:
    # One check rather than a union of strict types: a union's refusal names every branch
    # (``custom.a.str``, ``custom.a.int``, ...) where one readable message is wanted.
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError("must be a string, a number, true/false or null")


CustomValue = Annotated[
    str | bool | int | float | None,
    PlainValidator(_custom_value, json_schema_input_type=str | bool | int | float | None),
]
Custom = dict[Annotated[str, Field(min_length=1, max_length=100)], CustomValue]
LifecycleStage = Literal["lead", "customer", "subscriber", "other"]


def _present(value: str | None) -> bool:
    return value is not None and bool(value.strip())


class Writable(BaseModel):
    """What both objects' writable fields have in common: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class ContactFields(Writable):
    """A whole contact as written (create, or the merged result of a PATCH)."""

    first_name: Text | None = None
    last_name: Text | None = None
    email: Text | None = Field(None, description="must look like an e-mail address")
    phone: Text | None = None
    title: Text | None = None
    company_id: Annotated[StrictInt, Field(gt=0)] | None = Field(
        None, description="an internal company id: must name a live company when set"
    )
    lifecycle_stage: LifecycleStage | None = None
    archived: StrictBool = Field(False, description="alive, only flagged")
    custom: Custom = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("must look like an e-mail address (name@domain.tld)")
        return value

    @model_validator(mode="after")
    def _named(self) -> Self:
        # A contact nobody can find or address is useless to every CRM (HubSpot keys on e-mail,
        # Salesforce requires LastName): refuse it here, not as a dead letter later.
        if not _present(self.last_name) and not _present(self.email):
            raise ValueError("last_name: a contact needs a last_name or an email")
        return self


class CompanyFields(Writable):
    """A whole company as written."""

    name: Text = Field(min_length=1)
    domain: Text | None = None
    phone: Text | None = None
    city: Text | None = None
    industry: Text | None = None
    archived: StrictBool = Field(False, description="alive, only flagged")
    custom: Custom = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


FIELDS: dict[ObjectName, type[Writable]] = {"contact": ContactFields, "company": CompanyFields}


class SyncKeys(BaseModel):
    """The keys only the sync writes, as a create or a PATCH sends them: ``links`` (a null
    value removes that connection's link) and ``born`` (create only)."""

    model_config = ConfigDict(extra="forbid")

    links: dict[ConnectionName, ProviderId | None] = Field(default_factory=dict)
    born: ConnectionName | None = None


class Bookkeeping(BaseModel):
    """What the store adds to every row (first in a row's JSON)."""

    id: int
    object: ObjectName
    version: int
    origin: str
    deleted: bool
    created_at: str
    updated_at: str
    deleted_at: str | None
    links: dict[str, str] = Field(
        default_factory=dict, description="connection name -> the record's id at that provider"
    )
    born: str | None = Field(
        None, description="the connection the record came from (null: made in our system)"
    )


class ContactRow(ContactFields, Bookkeeping):
    """A contact as the store answers it (tombstones too, with ``deleted`` true)."""

    model_config = ConfigDict(extra="forbid")

    object: Literal["contact"] = "contact"


class CompanyRow(CompanyFields, Bookkeeping):
    """A company as the store answers it (tombstones too, with ``deleted`` true)."""

    model_config = ConfigDict(extra="forbid")

    object: Literal["company"] = "company"


Row = ContactRow | CompanyRow
ROWS: dict[ObjectName, type[ContactRow] | type[CompanyRow]] = {
    "contact": ContactRow,
    "company": CompanyRow,
}
AnyRow = Annotated[Row, Field(discriminator="object")]


class Feed(BaseModel):
    """``GET /changes``: rows and tombstones of both objects in version order."""

    items: list[AnyRow]
    next_after: int
    high_water: int


class ContactList(BaseModel):
    """``GET /contacts/``: live rows in id order."""

    items: list[ContactRow]
    next_after_id: int | None
    high_water: int


class CompanyList(BaseModel):
    """``GET /companies/``: live rows in id order."""

    items: list[CompanyRow]
    next_after_id: int | None
    high_water: int


def field_names(object: ObjectName) -> set[str]:
    return set(FIELDS[object].model_fields)


def dump_fields(row: Row) -> dict[str, Any]:
    """The writable fields of ``row``, as a PATCH merges into them."""
    return row.model_dump(include=field_names(row.object))
