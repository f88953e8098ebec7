"""pydantic models of what crosses the boundary: the case answer, the list envelope, and the
bodies of the ``/_standin/`` routes.

``CaseOut`` is strict (no coercion, no extra keys): a key missing, added or of the wrong type
fails validation, which is how the conformance tests hold the stand-in to the captured shape.
Request bodies of ``/web/v1/case/`` are not modelled here on purpose: Intempus reads them field by
field with tastypie's rules and texts (``case.Hydrator``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class CaseGroupFull(_Strict):
    """The embedded case group of detail and write answers."""

    company: str
    creation_id: str | None
    id: int
    name: str
    number: str
    resource_uri: str
    uuid: str | None


class CaseOut(_Strict):
    """A case as Intempus answers it: 54 keys, always all of them."""

    id: int
    resource_uri: str
    logical_timestamp: int
    uuid: str | None
    creation_id: str | None
    creation_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    number: str
    name: str
    customer: str
    customer_id: str
    customer_name: str
    customer_street_address: str
    customer_zip_code: str
    customer_city: str
    customer_country: str
    customer_latitude: str | None
    customer_longitude: str | None
    active: bool
    permit_new_workreports: bool
    all_employees_may_add_work_reports: bool
    all_worktypes_may_used_in_work_reports: bool
    remarks_required: bool | None
    file_upload_required: bool
    geofence: bool
    case_group: str | None
    case_group_full: CaseGroupFull | str | None
    case_state: str | None
    case_state_id: str | None
    case_state_name: str | None
    department: str | None
    department_id: str | None
    department_name: str | None
    responsible: str | None
    responsible_id: str | None
    responsible_name: str | None
    co_responsible: str | None
    co_responsible_id: str | None
    co_responsible_name: str | None
    responsibles: list[Any]
    parent: str | None
    parent_name: str | None
    root_parent: str | None
    number_of_children: int
    priority: str | None
    start_date: str | None = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    end_date: str | None = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    street_address: str
    zip_code: str
    city: str
    country: str
    latitude: str | None = Field(pattern=r"^-?\d+\.\d{6}$")
    longitude: str | None = Field(pattern=r"^-?\d+\.\d{6}$")
    hour_budget: str | None = Field(pattern=r"^-?\d+\.\d{2}$")
    notes: str


class ListMeta(_Strict):
    """``meta`` of a list answer; ``offset`` and ``total_count`` are absent on cursor pages."""

    limit: int
    next: str | None
    previous: str | None
    offset: int | None = None
    total_count: int | None = None


class CaseList(_Strict):
    meta: ListMeta
    objects: list[CaseOut]


class CaseWrite(BaseModel):
    """The writable keys of a case body, for the documentation only (see ``case.Hydrator``)."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    customer: str | None = Field(None, description="/web/v1/customer/{id}/")
    number: str | None = None
    creation_id: str | None = Field(None, description="create only; a repeat returns the case")
    active: bool | None = None
    permit_new_workreports: bool | None = None
    all_employees_may_add_work_reports: bool | None = None
    all_worktypes_may_used_in_work_reports: bool | None = None
    remarks_required: bool | None = None
    file_upload_required: bool | None = None
    geofence: bool | None = None
    case_group: str | None = None
    case_state: str | None = None
    department: str | None = None
    responsible: str | None = None
    co_responsible: str | None = None
    parent: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    street_address: str | None = None
    zip_code: str | None = None
    city: str | None = None
    country: str | None = None
    latitude: str | float | None = None
    longitude: str | float | None = None
    hour_budget: str | float | None = None
    notes: str | None = None


class WorkReports(BaseModel):
    """Body of ``PUT /_standin/cases/{id}/work_reports``."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, le=1_000_000)


WriteOp = Literal["POST", "PUT", "PATCH", "DELETE", "TOUCH", "STANDIN_DELETE", "STANDIN_POST"]


class KillAfter(BaseModel):
    """Body of ``POST /_standin/hooks/kill-after?op=...``: whom to signal after that write."""

    model_config = ConfigDict(extra="forbid")

    pid: int = Field(gt=1)
    signal: Literal["SIGKILL", "SIGTERM", "SIGINT"] = "SIGKILL"
