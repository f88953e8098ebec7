"""Intempus cases and local cases in one canonical form, and the three-way merge: no I/O.

Both sides are read into a ``Canonical`` dict of the synced fields, where ``==`` means "the same
case data": relations are ids, decimals are strings at their fixed scale, dates are
``YYYY-MM-DD``, and a nulled address string or ``notes`` is ``""``. Its SHA-256 is the content
hash the sync compares with the last agreed state (so an echo of our own write is a no-op).

Validation takes the stricter rule of the two sides for every field (a name of 300 characters is
fine for Intempus but refused by the local store), because a value one side cannot hold cannot be
synced: it is refused here as ``InvalidInput`` naming the field, not by a write later.

``parent`` is not synced here: Intempus's ``parent`` is an Intempus case id and the local store's
is a local case id, so the two are not comparable without the link table (I/O).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ...core.errors import InvalidInput

Canonical = dict[str, Any]
Side = Literal["intempus", "local"]

SYNCED_FIELDS: tuple[str, ...] = (
    "number", "name", "customer", "active", "permit_new_workreports",
    "all_employees_may_add_work_reports", "all_worktypes_may_used_in_work_reports",
    "remarks_required", "file_upload_required", "geofence", "case_group", "case_state",
    "department", "responsible", "co_responsible", "start_date", "end_date",
    "street_address", "zip_code", "city", "country", "notes", "latitude", "longitude",
    "hour_budget",
)  # fmt: skip

GROUPS: tuple[tuple[str, ...], ...] = (
    ("start_date", "end_date"),
    ("geofence", "latitude", "longitude"),
)
"""Fields merged as one value: each side only ever holds a valid combination (an end date needs
a start date, a geofence needs both coordinates), and a point or a period mixed from two sides is
one that nobody entered."""

# Relation field -> the Intempus resource its URI names.
RELATIONS: dict[str, str] = {
    "customer": "customer",
    "case_group": "case_group",
    "case_state": "case_state",
    "department": "department",
    "responsible": "employee",
    "co_responsible": "employee",
}
BLANK_STRINGS = ("street_address", "zip_code", "city", "country", "notes")
# field -> (decimal places, largest absolute value both sides accept). hour_budget: Intempus
# takes up to 99999999.99, the local store up to 99999999.
DECIMALS: dict[str, tuple[int, Decimal]] = {
    "latitude": (6, Decimal(90)),
    "longitude": (6, Decimal(180)),
    "hour_budget": (2, Decimal(99_999_999)),
}
DATES = ("start_date", "end_date")
INTEMPUS_BASE = "/web/v1/"

_UNITS: tuple[tuple[str, ...], ...] = (
    *GROUPS,
    *((name,) for name in SYNCED_FIELDS if not any(name in group for group in GROUPS)),
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MISSING = object()
RelationId = Annotated[int, Field(gt=0)]


def _decimal(value: Any, places: int, bound: Decimal) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError("must be a decimal number or a decimal string")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("invalid decimal string") from None
    if not number.is_finite():
        raise ValueError("invalid decimal string")
    if abs(number) > bound:
        raise ValueError(f"must be between -{bound} and {bound}")
    number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    # -0.00 and 0.00 are the same budget: one spelling, or they would hash apart.
    return str(abs(number) if number == 0 else number)


def _intempus_relation(name: str, value: Any) -> Any:
    """The id of a resource URI (path or absolute URL, read by its path as tastypie does) or of
    an embedded object; anything else is left to the strict int check (which lets a bare id
    through: harmless, although Intempus never answers one)."""
    if isinstance(value, str):
        head, _, last = value.rstrip("/").rpartition("/")
        resource = RELATIONS[name]
        if not head.endswith("/" + resource) or not last.isdigit():
            raise ValueError(f"not a /{resource}/ resource URI")
        return int(last)
    if isinstance(value, Mapping):
        row_id = value.get("id")
        if isinstance(row_id, str) and row_id.isdigit():
            return int(row_id)
        if isinstance(row_id, int) and not isinstance(row_id, bool):
            return row_id
        raise ValueError("embedded object without an id")
    return value


class _Case(BaseModel):
    """The synced fields of one side's row, canonicalised. Every field is required (a row
    always has them all); relations are read by the side given in the validation context."""

    model_config = ConfigDict(strict=True, extra="ignore")

    number: str = Field(max_length=100)
    name: str = Field(max_length=255)
    customer: RelationId
    active: bool
    permit_new_workreports: bool
    all_employees_may_add_work_reports: bool
    all_worktypes_may_used_in_work_reports: bool
    remarks_required: bool | None
    file_upload_required: bool
    geofence: bool
    case_group: RelationId | None
    case_state: RelationId | None
    department: RelationId | None
    responsible: RelationId | None
    co_responsible: RelationId | None
    start_date: str | None
    end_date: str | None
    street_address: str
    zip_code: str
    city: str
    country: str
    notes: str
    latitude: str | None
    longitude: str | None
    hour_budget: str | None

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator(*RELATIONS, mode="before")
    @classmethod
    def _relation(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or info.context is None or info.context.get("side") != "intempus":
            return value
        assert info.field_name is not None
        return _intempus_relation(info.field_name, value)

    @field_validator(*BLANK_STRINGS, mode="before")
    @classmethod
    def _null_is_blank(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator(*DATES, mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if value is None:
            return None
        if type(value) is date:  # not a datetime: its time would be dropped silently
            return value.isoformat()
        if not isinstance(value, str) or not _DATE.match(value):
            raise ValueError("must be a date as YYYY-MM-DD")
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("must be a real date as YYYY-MM-DD") from None

    @field_validator(*DECIMALS, mode="before")
    @classmethod
    def _decimal(cls, value: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None
        places, bound = DECIMALS[info.field_name]
        return _decimal(value, places, bound)


def _one_line(side: Side, row: Mapping[str, Any], name: str, value: Any, message: str) -> str:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{side} case {row.get('id', '?')}: {name}={shown}: {message}"


def _canonical(side: Side, row: Mapping[str, Any]) -> Canonical:
    try:
        case = _Case.model_validate(dict(row), context={"side": side})
    except ValidationError as error:
        # The first refusal is enough to act on; pydantic's full text is several lines.
        first = error.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        if first["type"] == "missing" or name not in row:
            raise InvalidInput(f"{side} case {row.get('id', '?')}: {name} is missing") from None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(_one_line(side, row, name, row[name], message)) from None
    fields = case.model_dump()
    # The rules across fields that both sides enforce: a merge of two valid states is valid
    # only if each input is.
    if fields["end_date"] is not None and fields["start_date"] is None:
        raise InvalidInput(
            _one_line(side, row, "end_date", fields["end_date"], "needs a start_date")
        )
    if fields["geofence"] and (fields["latitude"] is None or fields["longitude"] is None):
        raise InvalidInput(_one_line(side, row, "geofence", True, "needs latitude and longitude"))
    return fields


def from_intempus(row: Mapping[str, Any]) -> Canonical:
    """The synced fields of an Intempus case answer (the 54-key object), canonical."""
    return _canonical("intempus", row)


def from_local(row: Mapping[str, Any]) -> Canonical:
    """The synced fields of a local case store row, canonical."""
    return _canonical("local", row)


def _check_names(fields: Canonical) -> None:
    unknown = sorted(set(fields) - set(SYNCED_FIELDS))
    if unknown:
        raise ValueError(f"not synced fields: {', '.join(unknown)}")


def to_intempus(fields: Canonical) -> dict[str, Any]:
    """The body of an Intempus write of just these fields: Intempus takes relations only as
    resource URIs (a bare id is refused with 400, an object with "cannot specify pk")."""
    _check_names(fields)
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if name in RELATIONS and value is not None:
            body[name] = f"{INTEMPUS_BASE}{RELATIONS[name]}/{value}/"
        else:
            body[name] = value
    return body


def to_local(fields: Canonical) -> dict[str, Any]:
    """The body of a local store write of just these fields: it takes the canonical form as is
    (relations as ints, decimals as fixed-scale strings)."""
    _check_names(fields)
    return dict(fields)


def content_hash(c: Canonical) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces): equal data, equal hash."""
    text = json.dumps(c, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The fields whose values differ (a key missing on one side differs), synced fields first
    in their order, then any others sorted."""
    names = [n for n in SYNCED_FIELDS if n in a or n in b]
    names += sorted((set(a) | set(b)) - set(SYNCED_FIELDS))
    return [n for n in names if a.get(n, _MISSING) != b.get(n, _MISSING)]


@dataclass(frozen=True)
class Clash:
    """One field both sides changed differently since the agreed state (or, at first contact,
    a field on which they differ): what each side held and who won."""

    field: str
    intempus: Any
    local: Any
    base: Any
    winner: Literal["intempus", "local"]


@dataclass(frozen=True)
class Merged:
    """The merged state and what each side must be sent to reach it (only differing fields)."""

    result: Canonical
    clashes: list[Clash] = field(default_factory=list)
    for_intempus: Canonical = field(default_factory=dict)
    for_local: Canonical = field(default_factory=dict)


def _require_all(side: str, state: Mapping[str, Any]) -> None:
    missing = [n for n in SYNCED_FIELDS if n not in state]
    if missing:
        raise ValueError(f"{side} state lacks synced fields: {', '.join(missing)}")


def merge(
    base: Canonical | None,
    intempus: Canonical,
    local: Canonical,
    policy: Literal["intempus", "local"] = "intempus",
) -> Merged:
    """Three-way merge per field, each group of ``GROUPS`` as one value: equal sides stay; a side
    equal to ``base`` takes the other's value; otherwise (or with no base) it is a clash and the
    ``policy`` side wins, every field of the unit on which the sides differ being recorded.

    A field missing from ``base`` (a base saved before the field was synced) counts as unknown,
    like a missing base.
    """
    _require_all("intempus", intempus)
    _require_all("local", local)
    result: Canonical = {}
    clashes: list[Clash] = []
    for unit in _UNITS:
        i = tuple(intempus[n] for n in unit)
        lo = tuple(local[n] for n in unit)
        b = None if base is None else tuple(base.get(n, _MISSING) for n in unit)
        if i == lo or (b is not None and lo == b):
            taken = i
        elif b is not None and i == b:
            taken = lo
        else:
            taken = i if policy == "intempus" else lo
            clashes.extend(
                Clash(
                    field=n,
                    intempus=intempus[n],
                    local=local[n],
                    base=None if base is None else base.get(n),
                    winner=policy,
                )
                for n in unit
                if intempus[n] != local[n]
            )
        result.update(zip(unit, taken, strict=True))
    result = {n: result[n] for n in SYNCED_FIELDS}
    return Merged(
        result=result,
        clashes=clashes,
        for_intempus={n: result[n] for n in differs(intempus, result) if n in result},
        for_local={n: result[n] for n in differs(local, result) if n in result},
    )
