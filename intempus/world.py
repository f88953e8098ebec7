"""The read-only resources a case points at, and the sample cases a seeded server starts with.

Customers, case groups, case states, departments, employees and the one company are fixed rows
(the sync never writes them); they exist so that relation URIs resolve and the derived
``customer_*``/``*_name`` keys of a case have something to show. Sample cases follow from the
seed alone, so two servers started with the same flags hold the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

BASE = "/web/v1/"


def uri(resource: str, row_id: int) -> str:
    return f"{BASE}{resource}/{row_id}/"


@dataclass(frozen=True)
class Resource:
    """One read-only resource: its path name, tastypie class name and rows by id."""

    name: str
    class_name: str
    rows: dict[int, dict[str, Any]]


def _company() -> dict[int, dict[str, Any]]:
    return {1: {"id": 1, "name": "Standin ApS", "resource_uri": uri("company", 1)}}


def _customers() -> dict[int, dict[str, Any]]:
    rows = [
        (6666940, "1001", "Hansen & Søn A/S", "Vestergade 12", "8000", "Aarhus C",
         "56.156400", "10.206900"),
        (6666941, "1002", "Nordic Facility ApS", "Strandvejen 100", "2900", "Hellerup",
         "55.730100", "12.575600"),
        (6666942, "1003", "Jensen Byg", "Industrivej 4", "7100", "Vejle", None, None),
        (6666943, "1004", "Kommune Øst", "Rådhuspladsen 1", "1550", "København V",
         "55.675700", "12.569000"),
    ]  # fmt: skip
    return {
        cid: {
            "id": cid,
            "resource_uri": uri("customer", cid),
            "number": number,
            "name": name,
            "street_address": street,
            "zip_code": zip_code,
            "city": city,
            "country": "DK",
            "latitude": lat,
            "longitude": lon,
            "active": True,
            "uuid": None,
            "creation_id": None,
        }
        for cid, number, name, street, zip_code, city, lat, lon in rows
    }


def _case_groups() -> dict[int, dict[str, Any]]:
    names = {1001: ("Service", "S"), 1002: ("Projekter", "P"), 1003: ("Garanti", "G")}
    return {
        gid: {
            "company": uri("company", 1),
            "creation_id": None,
            "id": gid,
            "name": name,
            "number": number,
            "resource_uri": uri("case_group", gid),
            "uuid": None,
        }
        for gid, (name, number) in names.items()
    }


def _case_states() -> dict[int, dict[str, Any]]:
    names = {201: "Åben", 202: "I gang", 203: "Afsluttet"}
    return {
        sid: {"id": sid, "name": name, "resource_uri": uri("case_state", sid)}
        for sid, name in names.items()
    }


def _departments() -> dict[int, dict[str, Any]]:
    names = {301: ("Aarhus", "10"), 302: ("København", "20")}
    return {
        did: {"id": did, "name": name, "number": number, "resource_uri": uri("department", did)}
        for did, (name, number) in names.items()
    }


def _employees() -> dict[int, dict[str, Any]]:
    people = {
        401: ("Anna", "Holm", "anna@example.com"),
        402: ("Bo", "Madsen", "bo@example.com"),
        403: ("Clara", "Nielsen", "clara@example.com"),
        404: ("Dan", "Olsen", "dan@example.com"),
    }
    return {
        eid: {
            "id": eid,
            "first_name": first,
            "last_name": last,
            "name": f"{first} {last}",
            "email": email,
            "number": str(eid - 400),
            "resource_uri": uri("employee", eid),
        }
        for eid, (first, last, email) in people.items()
    }


class World:
    """The read-only resources, by path name (``customer``, ``employee``, ...)."""

    def __init__(self) -> None:
        resources = [
            Resource("company", "CompanyResource", _company()),
            Resource("customer", "CustomerResource", _customers()),
            Resource("case_group", "CaseGroupResource", _case_groups()),
            Resource("case_state", "CaseStateResource", _case_states()),
            Resource("department", "DepartmentResource", _departments()),
            Resource("employee", "EmployeeResource", _employees()),
        ]
        self.resources = {r.name: r for r in resources}

    def row(self, resource: str, row_id: int | None) -> dict[str, Any] | None:
        if row_id is None:
            return None
        return self.resources[resource].rows.get(row_id)


_WORDS = ["Tag", "Kloak", "Vinduer", "Maling", "Gulv", "Service", "Renovering", "Køkken", "Bad"]
_PLACES = ["Aarhus", "Vejle", "Odense", "Aalborg", "Horsens", "Roskilde"]


def sample_bodies(count: int, seed: int, world: World) -> list[dict[str, Any]]:
    """``count`` case bodies as a user would POST them; the same seed gives the same bodies."""
    rng = random.Random(seed)
    customers = sorted(world.resources["customer"].rows)
    groups = sorted(world.resources["case_group"].rows)
    employees = sorted(world.resources["employee"].rows)
    bodies: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        body: dict[str, Any] = {
            "number": str(n),
            "name": f"{rng.choice(_WORDS)} {rng.choice(_PLACES)} {n}",
            "customer": uri("customer", rng.choice(customers)),
            "active": rng.random() > 0.1,
        }
        if rng.random() < 0.5:
            body["case_group"] = uri("case_group", rng.choice(groups))
        if rng.random() < 0.5:
            body["responsible"] = uri("employee", rng.choice(employees))
        if rng.random() < 0.4:
            body["hour_budget"] = f"{rng.randint(1, 400)}.{rng.choice(['0', '5', '25'])}"
        if rng.random() < 0.3:
            body["start_date"] = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        bodies.append(body)
    return bodies
