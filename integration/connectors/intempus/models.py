"""Intempus's answers at the boundary (``docs/intempus-contract.md``).

Tolerant where the contract says Intempus varies: a relation may come as a resource URI
(``/web/v1/customer/6666940/``, or an absolute URL of it) or as an embedded object with an ``id``
(``case_group_full`` is embedded in detail answers), and keys beyond the ones read here are kept.
The raw row is kept beside the parsed one because the sync canonicalises rows itself; this
model only checks what the client must rely on (an int ``id``, an int ``logical_timestamp``).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

RELATIONS: tuple[str, ...] = (
    "customer", "case_group", "case_state", "department", "responsible", "co_responsible",
    "parent",
)  # fmt: skip

RESOURCE_OF: dict[str, str] = {
    "customer": "customer", "case_group": "case_group", "case_state": "case_state",
    "department": "department", "responsible": "employee", "co_responsible": "employee",
    "parent": "case",
}  # fmt: skip
"""The resource each relation key points at."""


def relation_id(value: Any) -> int | None:
    """The id a relation names: the last path segment of a URI, or the ``id`` of an embedded
    object; None for null. Anything else is refused (``ValueError``)."""
    if value is None:
        return None
    if isinstance(value, dict):
        inner = value.get("id")
        if isinstance(inner, int) and not isinstance(inner, bool):
            return inner
        if isinstance(inner, str) and inner.isdigit():
            return int(inner)
        if "resource_uri" in value:
            return relation_id(value["resource_uri"])
        raise ValueError("an embedded relation without an id")
    if isinstance(value, str):
        segment = value.strip().rstrip("/").rsplit("/", 1)[-1]
        if segment.isdigit():
            return int(segment)
    raise ValueError(f"not a resource URI or an embedded object: {str(value)[:60]!r}")


class ListMeta(BaseModel):
    """``meta`` of a list answer. Cursor pages carry only ``limit``, ``next`` and ``previous``
    (unless ``cursor_meta_full``); offset pages also ``offset`` and ``total_count``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: StrictInt | None = None
    next: StrictStr | None = None
    previous: StrictStr | None = None
    offset: StrictInt | None = None
    total_count: StrictInt | None = None


class CaseList(BaseModel):
    """A list answer. Rows stay raw so one bad row is dead-lettered alone, not with its page."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    meta: ListMeta
    objects: list[Any]


class IntempusCase(BaseModel):
    """One case row as the client needs it: identity, position in the change feed, the create
    key, and the relations as ids. ``raw`` is the row exactly as received."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: StrictInt = Field(gt=0)
    logical_timestamp: StrictInt
    creation_id: StrictStr | None = None
    resource_uri: StrictStr | None = None
    customer: int | None = None
    case_group: int | None = None
    case_state: int | None = None
    department: int | None = None
    responsible: int | None = None
    co_responsible: int | None = None
    parent: int | None = None
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @field_validator(*RELATIONS, mode="before")
    @classmethod
    def _relation(cls, value: Any) -> int | None:
        return relation_id(value)

    @classmethod
    def parse(cls, row: Any) -> Self:
        """Validate ``row`` (``pydantic.ValidationError`` names the field) and keep it raw."""
        if not isinstance(row, dict):
            return cls.model_validate(row)  # refused with pydantic's own message
        return cls.model_validate({**row, "raw": row})
