"""Our canonical CRM records: the one shape every side is mapped into and out of (no I/O).

A canonical record is a plain dict of canonical field names to normalised values, so ``==``
means "the same data" and its hash is what the sync compares with what it last wrote (an echo of
our own write is then a no-op). Normalised means: strings stripped, a blank string is None, an
e-mail is lower-case. The schema is checked by pydantic models, one per object; a record that
fails is refused as ``InvalidInput`` naming the field path (``contact.email``) and the rule.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...core.errors import InvalidInput

Canonical = dict[str, Any]
ObjectName = Literal["contact", "company"]
OBJECTS: tuple[ObjectName, ...] = ("contact", "company")
LIFECYCLE_STAGES = ("lead", "customer", "subscriber", "other")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value


class Contact(_Record):
    first_name: str | None = Field(None, max_length=255)
    last_name: str | None = Field(None, max_length=255)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=64)
    title: str | None = Field(None, max_length=255)
    lifecycle_stage: Literal["lead", "customer", "subscriber", "other"] | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _EMAIL.match(value):
            raise ValueError("not an e-mail address")
        return value.lower()


class Company(_Record):
    name: str | None = Field(None, max_length=255)
    domain: str | None = Field(None, max_length=255)
    phone: str | None = Field(None, max_length=64)
    city: str | None = Field(None, max_length=255)
    industry: str | None = Field(None, max_length=255)


MODELS: dict[str, type[_Record]] = {"contact": Contact, "company": Company}
FIELDS: dict[str, tuple[str, ...]] = {name: tuple(m.model_fields) for name, m in MODELS.items()}


def validate(object: str, fields: Mapping[str, Any], *, where: str) -> Canonical:
    """The canonical form of ``fields`` (only the fields given), or ``InvalidInput`` naming
    every failing field as ``<object>.<field>`` with the rule and ``where`` the data came from."""
    model = MODELS.get(object)
    if model is None:
        raise InvalidInput(f"{where}: unknown object {object!r}")
    try:
        checked = model.model_validate(dict(fields))
    except ValidationError as exc:
        problems = "; ".join(
            f"{object}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']} "
            f"(got {err.get('input')!r:.60})"
            for err in exc.errors()
        )
        raise InvalidInput(f"{where}: {problems}") from None
    return {name: getattr(checked, name) for name in fields}


def content_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys): equal data, equal hash."""
    text = json.dumps(dict(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
