"""Salesforce's object model as served: Contact and Account fields, 18-character ids."""

from __future__ import annotations

import re
import string
from typing import Any

from crm_providers.core.provider import FieldProblem

WRITABLE: dict[str, dict[str, int]] = {
    "Contact": {
        "FirstName": 40,
        "LastName": 80,
        "Email": 80,
        "Phone": 40,
        "Title": 128,
        "AccountId": 18,
        "Our_Id__c": 64,
    },
    "Account": {"Name": 255, "Website": 255, "Phone": 40, "Industry": 255, "Our_Id__c": 64},
}
"""Writable fields and their maximum lengths. ``Our_Id__c`` is an External ID field, not unique."""

REQUIRED = {"Contact": ("LastName",), "Account": ("Name",)}
SYSTEM = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp",
          "CreatedById", "LastModifiedById")  # fmt: skip
EXTERNAL_IDS = {"Contact": ("Our_Id__c",), "Account": ("Our_Id__c",)}
KEY_PREFIX = {"Contact": "003", "Account": "001"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ID = re.compile(r"^[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$")
_SUFFIX = string.ascii_uppercase + "012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def fields_of(obj: str) -> tuple[str, ...]:
    return (*SYSTEM, *WRITABLE[obj])


def checksum(id15: str) -> str:
    """The three characters Salesforce appends to a 15-character id (case-safe form)."""
    out = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        flags = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        out += _SUFFIX[flags]
    return out


def make_id(obj: str, number: int) -> str:
    body = ""
    while number:
        number, digit = divmod(number, 62)
        body = _BASE62[digit] + body
    id15 = KEY_PREFIX[obj] + "8d" + body.rjust(10, "0")[-10:]
    return id15 + checksum(id15)


def normalise_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when it is not one."""
    if not _ID.match(value):
        return None
    id18 = value if len(value) == 18 else value + checksum(value)
    return id18 if checksum(id18[:15]) == id18[15:] else None


def check(obj: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Fields as stored (strings or None), or ``FieldProblem`` with Salesforce's error code and
    the names of the fields at fault."""
    problems: list[str] = []
    bad: list[str] = []
    code = "INVALID_FIELD"
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "attributes":
            continue
        problem = _problem(obj, name, value)
        if problem is not None:
            code, text = problem
            problems.append(text)
            bad.append(name)
        elif name == "AccountId" and value:
            out[name] = normalise_id(value)
        else:
            out[name] = value
    if creating and not problems:
        missing = [name for name in REQUIRED[obj] if not out.get(name)]
        if missing:
            problems.append(f"Required fields are missing: [{', '.join(missing)}]")
            code, bad = "REQUIRED_FIELD_MISSING", missing
    if problems:
        raise FieldProblem(problems, code, bad)
    return out


def _problem(obj: str, name: str, value: Any) -> tuple[str, str] | None:
    """The error code and message for one field, or None when it is fine."""
    writable = WRITABLE[obj]
    if name not in writable:
        if name in SYSTEM:
            return "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}."
        return "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}"
    if value is not None and not isinstance(value, str):
        kind = type(value).__name__
        return "JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {kind}: {name}"
    if isinstance(value, str) and len(value) > writable[name]:
        return "STRING_TOO_LONG", f"{name}: data value too large (max length={writable[name]})"
    if name == "Email" and value and not _EMAIL.match(value):
        return "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {value}"
    if name == "AccountId" and value:
        normal = normalise_id(value)
        if normal is None or not normal.startswith(KEY_PREFIX["Account"]):
            return "MALFORMED_ID", f"Account ID: id value of incorrect type: {value}"
    return None
