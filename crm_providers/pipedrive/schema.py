"""Pipedrive's v2 object model as served: persons and organizations, integer ids, RFC 3339
times, typed values (v2 is strict: real numbers and booleans, no coercion)."""

from __future__ import annotations

from typing import Any

from crm_providers.core.provider import FieldProblem

WRITABLE = {
    "persons": ("name", "first_name", "last_name", "emails", "phones", "org_id", "owner_id",
                "custom_fields"),
    "organizations": ("name", "owner_id", "address", "custom_fields"),
}  # fmt: skip
ENTITY = {"persons": "person", "organizations": "organization"}


def _contact_list(name: str, value: Any, problems: list[str]) -> list[dict[str, Any]] | None:
    """``emails``/``phones``: a list of ``{value, primary, label}``, at most one primary."""
    if not isinstance(value, list):
        problems.append(f"{name} must be an array of objects")
        return None
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            problems.append(f"{name}[].value must be a string")
            return None
        primary = item.get("primary", False)
        if not isinstance(primary, bool):
            problems.append(f"{name}[].primary must be a boolean")
            return None
        label = item.get("label", "work")
        out.append({"value": item["value"], "primary": primary, "label": str(label)})
    if sum(1 for item in out if item["primary"]) > 1:
        problems.append(f"{name} may have only one primary entry")
        return None
    return out


def check(
    obj: str, fields: dict[str, Any], custom_keys: tuple[str, ...], *, creating: bool
) -> dict[str, Any]:
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in WRITABLE[obj]:
            problems.append(f"Unknown or read-only field: {name}")
        elif name in ("name", "first_name", "last_name", "address"):
            if value is not None and not isinstance(value, str):
                problems.append(f"{name} must be a string")
            else:
                out[name] = value
        elif name in ("emails", "phones"):
            checked = _contact_list(name, value, problems)
            if checked is not None:
                out[name] = checked
        elif name in ("org_id", "owner_id"):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                problems.append(f"{name} must be an integer")
            else:
                out[name] = value
        elif name == "custom_fields":
            if not isinstance(value, dict):
                problems.append("custom_fields must be an object")
                continue
            unknown = [k for k in value if k not in custom_keys]
            if unknown:
                problems.append(f"Unknown custom field(s): {', '.join(unknown)}")
                continue
            bad = [k for k, v in value.items() if v is not None and not isinstance(v, str)]
            if bad:
                problems.append(f"custom field {bad[0]} must be a string")
                continue
            out[name] = dict(value)
    if creating and not problems and not out.get("name"):
        problems.append("name is required")
    if problems:
        raise FieldProblem(problems, "INVALID_INPUT")
    return out
