"""What a user writes on either side: case bodies for a create and one-field edits, drawn from a
seeded ``random.Random`` so a demo or a benchmark workload can be repeated.

Only values both sides accept are drawn (the sync would rightly dead-letter anything else), and
``parent`` is never set: it is not a synced field (see ``mapping``)."""

from __future__ import annotations

import random
from typing import Any

CUSTOMERS = (6666940, 6666941, 6666942, 6666943)
EMPLOYEES = (401, 402, 403, 404)
CASE_GROUPS = (1001, 1002, 1003)
CITIES = ("Aarhus C", "Vejle", "Hellerup", "København V", "Odense")
WORDS = ("Tagrenovering", "Service", "Vinduer", "Kloak", "Facade", "Varme", "Garanti", "El")

INTEMPUS_CREATE_PATH = "/_standin/cases"
"""Intempus's user routes (``/_standin/``): a create and an edit as if made in its UI."""


def _name(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)} {rng.randrange(1, 10_000)}"


def case_fields(rng: random.Random, number: str) -> dict[str, Any]:
    """A new case's synced fields, relations as ids (the case store's form)."""
    return {
        "name": _name(rng),
        "number": number,
        "customer": rng.choice(CUSTOMERS),
        "responsible": rng.choice(EMPLOYEES),
        "case_group": rng.choice(CASE_GROUPS),
        "city": rng.choice(CITIES),
        "hour_budget": f"{rng.randrange(10, 500)}.50",
    }


def edit_fields(rng: random.Random) -> dict[str, Any]:
    """A user's edit: one or two fields changed."""
    choices: list[dict[str, Any]] = [
        {"name": _name(rng)},
        {"notes": f"note {rng.randrange(1_000_000)}"},
        {"city": rng.choice(CITIES)},
        {"hour_budget": f"{rng.randrange(10, 500)}.00"},
        {"responsible": rng.choice(EMPLOYEES)},
        {"active": rng.random() < 0.8},
        {"remarks_required": rng.choice((None, True, False))},
    ]
    edit = rng.choice(choices)
    if rng.random() < 0.3:
        edit = {**edit, **rng.choice(choices)}
    return edit


RELATIONS = {
    "customer": "customer",
    "responsible": "employee",
    "co_responsible": "employee",
    "case_group": "case_group",
    "case_state": "case_state",
    "department": "department",
}


def for_intempus(fields: dict[str, Any]) -> dict[str, Any]:
    """The same fields in Intempus's form: relations as resource URIs."""
    return {
        key: (
            f"/web/v1/{RELATIONS[key]}/{value}/"
            if key in RELATIONS and value is not None
            else value
        )
        for key, value in fields.items()
    }
