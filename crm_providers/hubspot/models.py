"""Request bodies of the HubSpot-like API (validated with these, documented from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 100
MAX_SEARCH_PAGE = 200


class _Body(BaseModel):
    # HubSpot ignores what it does not know (associations, for one): so does the stand-in.
    model_config = ConfigDict(extra="ignore")


class PropertiesBody(_Body):
    properties: dict[str, Any]


class IdInput(_Body):
    id: str


class CreateInput(_Body):
    properties: dict[str, Any]
    objectWriteTraceId: str | None = None


class UpdateInput(_Body):
    id: str
    properties: dict[str, Any]
    idProperty: str | None = None
    objectWriteTraceId: str | None = None


class UpsertInput(_Body):
    id: str = Field(description="the value of idProperty")
    idProperty: str
    properties: dict[str, Any]
    objectWriteTraceId: str | None = None


class BatchReadBody(_Body):
    inputs: list[IdInput]
    properties: list[str] = Field(default_factory=list)
    idProperty: str | None = None


class BatchCreateBody(_Body):
    inputs: list[CreateInput]


class BatchUpdateBody(_Body):
    inputs: list[UpdateInput]


class BatchUpsertBody(_Body):
    inputs: list[UpsertInput]


class BatchArchiveBody(_Body):
    inputs: list[IdInput]


class Filter(_Body):
    propertyName: str
    operator: str
    value: str | int | float | bool | None = None
    values: list[str | int | float] | None = None


class FilterGroup(_Body):
    filters: list[Filter] = Field(default_factory=list)


class Sort(_Body):
    propertyName: str
    direction: str = "ASCENDING"


class SearchBody(_Body):
    filterGroups: list[FilterGroup] = Field(default_factory=list, max_length=5)
    sorts: list[Sort | str] = Field(default_factory=list)
    properties: list[str] | None = None
    limit: int = Field(10, ge=1, le=MAX_SEARCH_PAGE)
    after: str | None = None


class GdprDeleteBody(_Body):
    objectId: str
    idProperty: str | None = None
