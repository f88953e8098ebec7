"""The case object: how a request body becomes stored fields (hydration) and how stored fields
become the 54-key answer (rendering).

Hydration follows tastypie: fields are read in declaration order and the first refusal wins;
read-only and unknown keys are ignored; an explicit null sets a nullable field to null and is
ignored on a non-nullable one (on create it takes the default). Writes are partial: a key left out
keeps its stored value (PUT included, as Intempus behaves).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from intempus.errors import ApiError, bad_request, form_error
from intempus.world import World, uri

# The 54 keys of every case answer, in the order they are rendered.
CASE_KEYS: tuple[str, ...] = (
    "id", "resource_uri", "logical_timestamp", "uuid", "creation_id", "creation_date",
    "number", "name", "customer", "customer_id", "customer_name", "customer_street_address",
    "customer_zip_code", "customer_city", "customer_country", "customer_latitude",
    "customer_longitude", "active", "permit_new_workreports",
    "all_employees_may_add_work_reports", "all_worktypes_may_used_in_work_reports",
    "remarks_required", "file_upload_required", "geofence", "case_group", "case_group_full",
    "case_state", "case_state_id", "case_state_name", "department", "department_id",
    "department_name", "responsible", "responsible_id", "responsible_name", "co_responsible",
    "co_responsible_id", "co_responsible_name", "responsibles", "parent", "parent_name",
    "root_parent", "number_of_children", "priority", "start_date", "end_date",
    "street_address", "zip_code", "city", "country", "latitude", "longitude", "hour_budget",
    "notes",
)  # fmt: skip

# Relation field -> the resource its URI must name ("case" for parent).
RELATIONS: dict[str, str] = {
    "customer": "customer",
    "case_group": "case_group",
    "case_state": "case_state",
    "department": "department",
    "responsible": "employee",
    "co_responsible": "employee",
    "parent": "case",
}
CLASS_NAMES = {
    "customer": "CustomerResource",
    "case_group": "CaseGroupResource",
    "case_state": "CaseStateResource",
    "department": "DepartmentResource",
    "employee": "EmployeeResource",
    "case": "CaseResource",
}
# Non-nullable booleans and their defaults on create (contract section 7).
BOOL_DEFAULTS: dict[str, bool] = {
    "active": True,
    "permit_new_workreports": True,
    "all_employees_may_add_work_reports": False,
    "all_worktypes_may_used_in_work_reports": True,
    "file_upload_required": False,
    "geofence": False,
}
BOOLEAN_KEYS = tuple(k for k in CASE_KEYS if k in BOOL_DEFAULTS or k == "remarks_required")
BLANK_STRINGS = ("street_address", "zip_code", "city", "country", "notes")
DECIMALS: dict[str, tuple[int, Decimal]] = {
    # field -> (decimal places, largest absolute value allowed)
    "latitude": (6, Decimal(90)),
    "longitude": (6, Decimal(180)),
    "hour_budget": (2, Decimal("99999999.99")),
}
DATES = ("start_date", "end_date")

# Writable fields in declaration order: the order in which a body is checked.
WRITABLE: tuple[str, ...] = tuple(
    k
    for k in CASE_KEYS
    if k in RELATIONS
    or k in BOOL_DEFAULTS
    or k in BLANK_STRINGS
    or k in DECIMALS
    or k in DATES
    or k in ("number", "name", "remarks_required")
)

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}).*?$")


@dataclass
class StoredCase:
    """A case as stored: its id, LT, writable fields plus creation_id/creation_date/uuid, and the
    hidden count of work reports that blocks its deletion."""

    id: int
    lt: int
    fields: dict[str, Any]
    work_reports: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def defaults() -> dict[str, Any]:
    """The stored fields of a case created from a body with only the required keys."""
    values: dict[str, Any] = dict.fromkeys(WRITABLE)
    values.update(BOOL_DEFAULTS)
    values.update(dict.fromkeys(BLANK_STRINGS, ""))
    values["number"] = ""
    return values


class Hydrator:
    """Turns a request body into the new stored fields of one case."""

    def __init__(self, world: World, cases: Mapping[int, StoredCase]) -> None:
        self._world = world
        self._cases = cases

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        values = defaults()
        for name in ("name", "customer"):
            if body.get(name) is None:
                if name == "name":
                    raise bad_request(
                        "The 'name' field has no data and doesn't allow a default or null value."
                    )
                raise bad_request(
                    "The 'customer' field has no data and doesn't allow a null value."
                )
        self._apply(body, values, creating=True, self_id=None)
        creation_id = body.get("creation_id")
        values["creation_id"] = None if creation_id is None else str(creation_id)
        values["uuid"] = None
        return values

    def update(self, body: Mapping[str, Any], stored: StoredCase) -> dict[str, Any]:
        values = dict(stored.fields)
        self._apply(body, values, creating=False, self_id=stored.id)
        return values

    def _apply(
        self,
        body: Mapping[str, Any],
        values: dict[str, Any],
        *,
        creating: bool,
        self_id: int | None,
    ) -> None:
        for name in WRITABLE:
            if name not in body:
                continue
            value = body[name]
            if name in RELATIONS:
                if value is None and name == "customer":
                    continue  # non-nullable: ignored on update, refused on create above
                values[name] = self._relation(name, value, self_id)
            elif name in BOOL_DEFAULTS:
                if value is None:
                    if creating:
                        values[name] = BOOL_DEFAULTS[name]
                    continue
                values[name] = _boolean(name, value, nullable=False)
            elif name == "remarks_required":
                values[name] = _boolean(name, value, nullable=True)
            elif name in BLANK_STRINGS:
                values[name] = "" if value is None else _string(name, value)
            elif name in ("number", "name"):
                if value is None:
                    continue
                text = _string(name, value)
                if name == "name" and not text.strip():
                    raise form_error("name", "This field cannot be blank.")
                values[name] = text
            elif name in DECIMALS:
                values[name] = _decimal(name, value)
            elif name in DATES:
                values[name] = _date(name, value)
        if values["end_date"] is not None and values["start_date"] is None:
            raise form_error("end_date", "An end date requires a start date.")
        if values["geofence"] and (values["latitude"] is None or values["longitude"] is None):
            raise form_error("geofence", "A geofence requires latitude and longitude.")

    def _relation(self, name: str, value: Any, self_id: int | None) -> int | None:
        if value is None:
            return None
        resource = RELATIONS[name]
        if isinstance(value, dict):
            raise bad_request("You cannot specify pk when creating an instance")
        if not isinstance(value, str):
            raise bad_request(
                f"The '{name}' field was given data that was not a URI, not a dictionary-alike "
                f"and does not have a 'pk' attribute: {value}."
            )
        row_id = _uri_id(value, resource)
        exists = (
            row_id in self._cases
            if resource == "case"
            else self._world.row(resource, row_id) is not None
        )
        if not exists:
            raise bad_request(f"Could not find the provided object via resource URI '{value}'.")
        if resource == "case":
            self._check_parent(row_id, self_id)
        return row_id

    def _check_parent(self, parent: int, self_id: int | None) -> None:
        if self_id is None:
            return
        seen: set[int] = set()
        current: int | None = parent
        while current is not None and current not in seen:
            if current == self_id:
                raise form_error("parent", "A case cannot be its own parent or ancestor.")
            seen.add(current)
            above = self._cases.get(current)
            current = None if above is None else above.fields.get("parent")


def _uri_id(value: str, resource: str) -> int:
    """The id of a resource URI, read the way tastypie's ``get_via_uri`` reads it: the part
    before the last segment must end with ``/<resource>`` (so an absolute URL works too), and
    the last segment must be an id."""
    path = value.rstrip("/")
    head, _, last = path.rpartition("/")
    if not head or not head.endswith("/" + resource):
        raise ApiError(
            404,
            {
                "error": f"An incorrect URL was provided '{value}' for the "
                f"'{CLASS_NAMES[resource]}' resource."
            },
        )
    if not last.isdigit():
        raise ApiError(
            404, {"error": f"The URL provided '{value}' was not a link to a valid resource."}
        )
    return int(last)


def _boolean(name: str, value: Any, *, nullable: bool) -> bool | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool):
        return value
    choices = "True, False, or None" if nullable else "either True or False"
    raise form_error(name, f"“{value}” value must be {choices}.")


def _string(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise form_error(name, "Enter a valid value.")
    return str(value)


def _decimal(name: str, value: Any) -> str | None:
    if value is None:
        return None
    places, bound = DECIMALS[name]
    invalid = bad_request(f"Invalid decimal string for '{name}' field: '{value}'")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid from None
    if not number.is_finite():
        raise invalid
    if abs(number) > bound:
        raise form_error(name, f"Ensure this value is between -{bound} and {bound}.")
    return str(number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def _date(name: str, value: Any) -> str | None:
    if value is None:
        return None
    invalid = bad_request(
        f"Date provided to '{name}' field doesn't appear to be a valid date string: '{value}'"
    )
    match = _DATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise invalid
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError:
        raise invalid from None


class Renderer:
    """Builds the 54-key answer of a case from stored fields and the read-only resources."""

    def __init__(
        self, world: World, cases: Mapping[int, StoredCase], children: Mapping[int, int]
    ) -> None:
        self._world = world
        self._cases = cases
        self._children = children

    def render(self, case: StoredCase, *, full: bool, lt: int | None = None) -> dict[str, Any]:
        """The answer; ``full`` embeds case_group_full (detail bodies), ``lt`` overrides the
        logical timestamp shown (the stale values of write answers)."""
        f = case.fields
        customer = self._world.row("customer", f["customer"]) or {}
        group = self._world.row("case_group", f["case_group"])
        out: dict[str, Any] = {
            "id": case.id,
            "resource_uri": uri("case", case.id),
            "logical_timestamp": case.lt if lt is None else lt,
            "uuid": f.get("uuid"),
            "creation_id": f.get("creation_id"),
            "creation_date": f["creation_date"],
            "number": f["number"],
            "name": f["name"],
            "customer": uri("customer", f["customer"]),
            "customer_id": str(f["customer"]),
            "customer_name": customer.get("name", ""),
            "customer_street_address": customer.get("street_address", ""),
            "customer_zip_code": customer.get("zip_code", ""),
            "customer_city": customer.get("city", ""),
            "customer_country": customer.get("country", ""),
            "customer_latitude": customer.get("latitude"),
            "customer_longitude": customer.get("longitude"),
        }
        for name in BOOLEAN_KEYS:
            out[name] = f[name]
        out["case_group"] = None if group is None else group["resource_uri"]
        out["case_group_full"] = (
            None if group is None else (dict(group) if full else uri("case_group", group["id"]))
        )
        for name, resource in (
            ("case_state", "case_state"),
            ("department", "department"),
            ("responsible", "employee"),
            ("co_responsible", "employee"),
        ):
            row = self._world.row(resource, f[name])
            out[name] = None if row is None else row["resource_uri"]
            out[f"{name}_id"] = None if row is None else str(row["id"])
            out[f"{name}_name"] = None if row is None else row["name"]
        out["responsibles"] = []
        parent = self._cases.get(f["parent"]) if f["parent"] is not None else None
        out["parent"] = None if parent is None else uri("case", parent.id)
        out["parent_name"] = None if parent is None else parent.fields["name"]
        out["root_parent"] = self._root(parent)
        out["number_of_children"] = self._children.get(case.id, 0)
        out["priority"] = None
        for name in (*DATES, "street_address", "zip_code", "city", "country"):
            out[name] = f[name]
        for name in DECIMALS:
            out[name] = f[name]
        out["notes"] = f["notes"]
        return out  # built in CASE_KEYS order (a test holds it to that)

    def _root(self, parent: StoredCase | None) -> str | None:
        if parent is None:
            return None
        seen = {parent.id}
        top = parent
        while top.fields.get("parent") is not None:
            above = self._cases.get(top.fields["parent"])
            if above is None or above.id in seen:
                break
            seen.add(above.id)
            top = above
        return uri("case", top.id)
