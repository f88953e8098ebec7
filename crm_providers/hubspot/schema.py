"""HubSpot's object model as served: property names per object, which are unique, which are the
system's (read-only), and how values are checked. Every value is a string, as in HubSpot."""

from __future__ import annotations

import re
from typing import Any

from crm_providers.core.provider import FieldProblem

WRITABLE: dict[str, tuple[str, ...]] = {
    "contacts": ("firstname", "lastname", "email", "phone", "company", "lifecyclestage", "our_id"),
    "companies": ("name", "domain", "phone", "city", "industry", "our_id"),
}
"""Properties a client may set. ``our_id`` is a custom property marked unique (an external id)."""

MODIFIED: dict[str, str] = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate"}
"""The last-modified property differs per object, as in HubSpot."""

SYSTEM = ("hs_object_id", "createdate")
UNIQUE: dict[str, tuple[str, ...]] = {"contacts": ("email", "our_id"), "companies": ("our_id",)}
SINGULAR = {"contacts": "contact", "companies": "company"}
OBJECT_TYPE = {"contacts": "CONTACT", "companies": "COMPANY"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def readable(obj: str) -> tuple[str, ...]:
    return (*WRITABLE[obj], *SYSTEM, MODIFIED[obj])


def check(obj: str, properties: dict[str, Any]) -> dict[str, str]:
    """The properties as stored (strings; ``None`` clears to ""), or ``FieldProblem`` naming each
    bad one the way HubSpot's VALIDATION_ERROR message does."""
    problems: list[str] = []
    out: dict[str, str] = {}
    for name, value in properties.items():
        if name not in WRITABLE[obj]:
            if name in readable(obj):
                problems.append(f'Property "{name}" is read-only (READ_ONLY_VALUE)')
            else:
                problems.append(f'Property "{name}" does not exist (PROPERTY_DOESNT_EXIST)')
            continue
        if value is None:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            out[name] = str(value)
        else:
            problems.append(
                f'Property "{name}" must be a string, number or boolean (INVALID_OPTION)'
            )
            continue
        if name == "email" and out[name] and not _EMAIL.match(out[name]):
            problems.append(f"Email address {out[name]} is invalid (INVALID_EMAIL)")
    if problems:
        raise FieldProblem(problems, "VALIDATION_ERROR")
    return out
