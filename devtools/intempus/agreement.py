"""Do both sides agree? Read from the stand-ins' ``/_standin/truth``, independent of any sync's
state, so the sync and the naive baseline are held to the same check: every Intempus case has
exactly one live local case paired with it (by the local row's ``intempus_id``, or by Intempus's
``creation_id`` naming the local row), no live local case is unpaired, and every pair is equal on
the synced fields (``mapping.differs``)."""

from __future__ import annotations

from typing import Any

from integration.core.errors import InvalidInput
from integration.pipelines.intempus_cases.mapping import differs, from_intempus, from_local

LOCAL_CREATIONS = ("local:", "naive:")
"""``creation_id`` prefixes of an Intempus case made from a local one: the sync's, the naive
baseline's."""


def _local_id(irow: dict[str, Any]) -> int | None:
    creation = irow.get("creation_id")
    if isinstance(creation, str):
        for prefix in LOCAL_CREATIONS:
            if creation.startswith(prefix) and creation.removeprefix(prefix).isdigit():
                return int(creation.removeprefix(prefix))
    return None


def disagreements(intempus: dict[str, Any], local: dict[str, Any]) -> list[str]:
    """What is wrong, one line each (empty: both sides agree). Arguments: the two truths."""
    live = {int(row["id"]): row for row in local["cases"] if not row["deleted"]}
    by_link = {int(row["intempus_id"]): row for row in live.values() if row["intempus_id"]}
    problems: list[str] = []
    paired: set[int] = set()
    for irow in intempus["cases"]:
        iid = int(irow["id"])
        lrow = by_link.get(iid)
        if lrow is None:
            lid = _local_id(irow)
            lrow = live.get(lid) if lid is not None else None
        if lrow is None:
            problems.append(f"Intempus case {iid}: no local case")
            continue
        if lrow["id"] in paired:
            problems.append(f"local case {lrow['id']}: paired twice")
        paired.add(lrow["id"])
        try:
            fields = differs(from_intempus(irow), from_local(lrow))
        except InvalidInput as exc:
            problems.append(f"Intempus {iid} / local {lrow['id']}: {exc}")
            continue
        if fields:
            problems.append(f"Intempus {iid} / local {lrow['id']}: {', '.join(fields)} differ")
    problems += [f"local case {lid}: no Intempus case" for lid in sorted(set(live) - paired)]
    return problems
