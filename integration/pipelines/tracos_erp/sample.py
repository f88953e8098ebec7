"""Sample data for trying the sync out: ERP files and TracOS documents with the mix real data
shows (every status, deletions, optional fields missing, varying UTC offsets, dates stored as
ISO strings by other tools). Half the numbers overlap, so both directions and the newer-wins
rule are exercised."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from ...connectors.tracos.models import Status
from .mapping import flags_from_status

OFFSETS = (timedelta(0), timedelta(hours=2), timedelta(hours=-3), timedelta(hours=5, minutes=30))
WEIGHTS = {
    Status.PENDING: 3,
    Status.IN_PROGRESS: 4,
    Status.COMPLETED: 3,
    Status.ON_HOLD: 1,
    Status.CANCELLED: 1,
}
TITLES = ("Replace bearing", "Inspect pump", "Lubricate motor", "Calibrate sensor", "Fix leak")
ASSETS = ("compressor C-12", "conveyor B", "pump P-3", "chiller 2", "press 7")


def _status(rng: random.Random) -> Status:
    return rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]


def _times(rng: random.Random, now: datetime) -> tuple[datetime, datetime]:
    created = now - timedelta(days=rng.uniform(1, 60))
    updated = created + (now - created) * rng.random()
    return created, updated


def _erp_date(value: datetime, rng: random.Random) -> str:
    local = value.astimezone(timezone(rng.choice(OFFSETS)))
    return local.isoformat(timespec=rng.choice(("seconds", "milliseconds")))


def sample_files(count: int, first: int, now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """ERP work orders numbered ``first`` onwards, as the ERP would write them."""
    orders = []
    for number in range(first, first + count):
        status = _status(rng)
        deleted = rng.random() < 0.1
        created, updated = _times(rng, now)
        flags = flags_from_status(status)
        order: dict[str, Any] = {"orderNo": number, **flags, "isDeleted": deleted}
        if not flags["isActive"] and rng.random() < 0.5:
            del order["isActive"]  # optional, and often absent
        elif flags["isActive"] and rng.random() < 0.3:
            order.pop("isActive")  # in progress said by no flag at all
        if rng.random() < 0.5:
            order["isSynced"] = rng.random() < 0.5
        order |= {
            "summary": f"{rng.choice(TITLES)} on {rng.choice(ASSETS)}",
            "creationDate": _erp_date(created, rng),
            "lastUpdateDate": _erp_date(updated, rng),
            "deletedDate": _erp_date(updated, rng) if deleted else None,
        }
        orders.append(order)
    return orders


def file_bytes(order: dict[str, Any]) -> bytes:
    return json.dumps(order, indent=2).encode() + b"\n"


def _stored(value: datetime, style: str, rng: random.Random) -> Any:
    if style == "string":
        return _erp_date(value, rng)
    return value.replace(tzinfo=None) if style == "naive" else value


def sample_documents(
    count: int, first: int, now: datetime, rng: random.Random
) -> list[dict[str, Any]]:
    """TracOS documents numbered ``first`` onwards, as different tools leave them."""
    docs = []
    for number in range(first, first + count):
        deleted = rng.random() < 0.1
        status = Status.CANCELLED if deleted else _status(rng)
        created, updated = _times(rng, now)
        # Some tools store ISO strings with their offsets, some naive UTC datetimes.
        style = rng.choices(("string", "naive", "aware"), weights=(1, 2, 2))[0]

        def date(value: datetime, *, _style: str = style) -> Any:
            return _stored(value, _style, rng)

        doc: dict[str, Any] = {
            "number": number,
            "status": status.value,
            "title": f"{rng.choice(TITLES)} on {rng.choice(ASSETS)}",
            "description": rng.choice(("", "Reported by the night shift.", "Parts ordered.")),
            "createdAt": date(created),
            "updatedAt": date(updated),
            "deleted": deleted,
        }
        if deleted:
            doc["deletedAt"] = date(updated)
        synced = rng.random()
        if synced < 0.35:
            pass  # created by a tool that knows nothing of isSynced
        elif synced < 0.8:
            doc["isSynced"] = False
        else:
            doc["isSynced"] = True
            doc["syncedAt"] = date(updated)
        docs.append(doc)
    return docs
