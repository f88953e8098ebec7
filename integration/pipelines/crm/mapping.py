"""Declarative, reversible mappings between a provider's fields and our canonical ones (no I/O).

A mapping is data (``FieldMap`` rows, defaults per provider below, replaceable per connection in
the connections file), and two pure functions apply it: ``to_canonical`` (validation in: the
provider's values through the map, then the canonical schema) and ``to_provider`` (the canonical
values through the map, then the provider's write rules: validation out). A refusal is
``InvalidInput`` naming the field path and the rule, so a dead letter says what to fix.

Transforms:

- ``text``: the value as text (HubSpot sends every value as a string);
- ``enum``: a table canonical → provider value, used both ways; a value outside it is refused;
- ``join``: out only, several canonical fields joined with spaces (Pipedrive's required ``name``
  from first and last name);
- ``upper`` / ``lower``: out only, a provider that normalises case. Not reversible: a pair of
  connections normalising one field differently make a record ping-pong, which the breaker stops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...core.errors import InvalidInput
from .canonical import FIELDS, Canonical, validate


class FieldMap(BaseModel):
    """One provider field and where its value comes from or goes to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="the provider's field, flattened (``custom_fields.<key>``)")
    canonical: str | tuple[str, ...]
    transform: Literal["text", "enum", "join", "upper", "lower"] = "text"
    values: dict[str, str] = Field(default_factory=dict, description="enum: canonical → provider")

    @model_validator(mode="after")
    def _shape(self) -> FieldMap:
        if self.transform == "join" and isinstance(self.canonical, str):
            raise ValueError("a join takes a list of canonical fields")
        if self.transform != "join" and not isinstance(self.canonical, str):
            raise ValueError("only a join takes several canonical fields")
        if self.transform == "enum" and not self.values:
            raise ValueError("an enum needs its table of values")
        return self

    @property
    def reads(self) -> bool:
        """Whether the provider's value flows in (one-way transforms only go out)."""
        return self.transform in ("text", "enum")

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.canonical,) if isinstance(self.canonical, str) else self.canonical


class ObjectMap(BaseModel):
    """How one canonical object maps to a provider object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[FieldMap, ...]
    required_on_create: tuple[str, ...] = ()
    """Provider fields a create must carry (Salesforce's ``LastName``, Pipedrive's ``name``)."""

    def synced(self) -> tuple[str, ...]:
        """The canonical fields this mapping carries both ways (merged, compared, hashed)."""
        return tuple(dict.fromkeys(f.canonical for f in self.fields if f.reads))  # type: ignore[misc]


def check_fields(object: str, mapping: ObjectMap) -> None:
    """Every canonical field a mapping names exists (a typo in a connections file is refused at
    start, not a silent None)."""
    known = set(FIELDS[object])
    for row in mapping.fields:
        for name in row.sources:
            if name not in known:
                raise ValueError(
                    f"{object} mapping: {row.field} names canonical field {name!r}, which does "
                    f"not exist (known: {', '.join(sorted(known))})"
                )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        return str(value)
    raise TypeError(f"a {type(value).__name__}, not a text value")


def to_canonical(
    object: str, mapping: ObjectMap, fields: Mapping[str, Any], *, where: str
) -> Canonical:
    """A provider record's fields as canonical ones (only the fields the mapping reads)."""
    out: dict[str, Any] = {}
    for row in mapping.fields:
        if not row.reads:
            continue
        assert isinstance(row.canonical, str)
        value = fields.get(row.field)
        try:
            text = _text(value)
        except TypeError as exc:
            raise InvalidInput(
                f"{where}: {object}.{row.canonical} (from {row.field}): {exc}"
            ) from None
        if row.transform == "enum" and text is not None and text.strip():
            back = {v: k for k, v in row.values.items()}
            if text not in back:
                raise InvalidInput(
                    f"{where}: {object}.{row.canonical} (from {row.field}): {text!r} is not in "
                    f"the mapping's enum table ({', '.join(sorted(back))})"
                )
            text = back[text]
        out[row.canonical] = text
    return validate(object, out, where=where)


def to_provider(
    object: str,
    mapping: ObjectMap,
    record: Canonical,
    *,
    only: Sequence[str] | None = None,
    create: bool = False,
    where: str,
) -> dict[str, Any]:
    """Canonical values as the provider's fields: all the mapping writes (a create), or those
    fed by the canonical fields in ``only`` (an update of what changed). Validation out: a
    create must carry the provider's required fields."""
    wanted = None if only is None else set(only)
    out: dict[str, Any] = {}
    for row in mapping.fields:
        if wanted is not None and not wanted.intersection(row.sources):
            continue
        values = [record.get(name) for name in row.sources]
        if row.transform == "join":
            out[row.field] = " ".join(str(v) for v in values if v) or None
            continue
        value = values[0]
        if value is not None:
            if row.transform == "enum":
                if value not in row.values:
                    raise InvalidInput(
                        f"{where}: {object}.{row.canonical} → {row.field}: {value!r} has no "
                        "value in the mapping's enum table"
                    )
                value = row.values[value]
            elif row.transform == "upper":
                value = str(value).upper()
            elif row.transform == "lower":
                value = str(value).lower()
        out[row.field] = value
    if create:
        missing = [name for name in mapping.required_on_create if not out.get(name)]
        if missing:
            raise InvalidInput(
                f"{where}: {object} cannot be created without {', '.join(missing)} (required "
                "by the provider; mapped from "
                + ", ".join("+".join(r.sources) for r in mapping.fields if r.field in missing)
                + ")"
            )
    return out


def _m(field: str, canonical: str, **kw: Any) -> FieldMap:
    return FieldMap(field=field, canonical=canonical, **kw)


_STAGES = {stage: stage for stage in ("lead", "customer", "subscriber", "other")}

DEFAULTS: dict[str, dict[str, ObjectMap]] = {
    "hubspot": {
        "contact": ObjectMap(
            fields=(
                _m("firstname", "first_name"),
                _m("lastname", "last_name"),
                _m("email", "email"),
                _m("phone", "phone"),
                _m("lifecyclestage", "lifecycle_stage", transform="enum", values=_STAGES),
            )
        ),
        "company": ObjectMap(
            fields=(
                _m("name", "name"),
                _m("domain", "domain"),
                _m("phone", "phone"),
                _m("city", "city"),
                _m("industry", "industry"),
            )
        ),
    },
    "salesforce": {
        "contact": ObjectMap(
            fields=(
                _m("FirstName", "first_name"),
                _m("LastName", "last_name"),
                _m("Email", "email"),
                _m("Phone", "phone"),
                _m("Title", "title"),
            ),
            required_on_create=("LastName",),
        ),
        "company": ObjectMap(
            fields=(
                _m("Name", "name"),
                _m("Website", "domain"),
                _m("Phone", "phone"),
                _m("Industry", "industry"),
            ),
            required_on_create=("Name",),
        ),
    },
    "pipedrive": {
        "contact": ObjectMap(
            fields=(
                _m("first_name", "first_name"),
                _m("last_name", "last_name"),
                _m("email", "email"),
                _m("phone", "phone"),
                FieldMap(field="name", canonical=("first_name", "last_name"), transform="join"),
            ),
            required_on_create=("name",),
        ),
        "company": ObjectMap(fields=(_m("name", "name"),), required_on_create=("name",)),
    },
}
"""What each provider's fields mean in our terms, unless a connection says otherwise."""
