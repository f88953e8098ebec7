"""What "nothing lost, nothing duplicated" means for the CRM sync, read from the sides' own
truth after the world has settled: every live record of ours is at every provider exactly once
(linked by our id, or by the provider id we were born from), no provider holds a live record that
is not ours, and the mapped fields agree."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from integration.connectors.crm.base import Connector, RateLimited, UnlimitedBudget
from integration.core.http import HttpService
from integration.pipelines.crm.canonical import OBJECTS
from integration.pipelines.crm.clients import build_connector
from integration.pipelines.crm.connections import Connection
from integration.pipelines.crm.mapping import to_canonical
from tests.crm.world import World


def _connector(w: World, name: str, session: aiohttp.ClientSession) -> Connector:
    connection = Connection.model_validate({"name": name, "provider": name, "url": w.urls[name]})
    connector = build_connector(connection, HttpService(name, w.urls[name], session, timeout=10))
    connector.budget = UnlimitedBudget()  # type: ignore[attr-defined]
    return connector


async def disagreements(w: World) -> list[str]:
    """Every way the sides disagree, one line each (empty: they agree)."""
    problems: list[str] = []
    async with aiohttp.ClientSession() as session:
        for obj in OBJECTS:
            ours = {row["id"]: row for row in await w.ours(obj)}
            for name in w.connected:
                connection = Connection.model_validate(
                    {"name": name, "provider": name, "url": w.urls[name]}
                )
                mapping = connection.object_map(obj)
                connector = _connector(w, name, session)
                theirs: dict[int, list[Any]] = {}
                for record in await _all(connector, obj):
                    if record.deleted:
                        continue
                    our_id = _our_id(record, ours, name)
                    if our_id is None:
                        problems.append(f"{name} {obj} {record.id}: not ours (a stray copy)")
                        continue
                    theirs.setdefault(our_id, []).append(record)
                for our_id, row in ours.items():
                    copies = theirs.get(our_id, [])
                    if len(copies) != 1:
                        problems.append(f"{name} {obj} ours {our_id}: {len(copies)} copies")
                        continue
                    got = to_canonical(obj, mapping, copies[0].fields, where=name)
                    for field, value in got.items():
                        if row.get(field) != value:
                            problems.append(
                                f"{name} {obj} ours {our_id}: {field} {value!r} there, "
                                f"{row.get(field)!r} ours"
                            )
                for our_id in theirs.keys() - ours.keys():
                    problems.append(f"{name} {obj}: holds ours {our_id}, which is not live ours")
    return problems


def _our_id(record: Any, ours: dict[int, dict[str, Any]], name: str) -> int | None:
    if record.our_id is not None and str(record.our_id).isdigit():
        return int(record.our_id)
    for our_id, row in ours.items():
        if row.get("born") == name and (row.get("links") or {}).get(name) == record.id:
            return our_id
    return None


async def _all(connector: Connector, obj: Any) -> list[Any]:
    """Every record, read again after a wait if the provider refuses for a limit (the workers
    spend the same account's budget meanwhile)."""
    for _ in range(10):
        try:
            return [record async for page in connector.changed_since(obj, None) for record in page]
        except RateLimited as refused:
            await asyncio.sleep(min(refused.wait, 10.0))
    raise AssertionError(f"{connector.kind}: still refused after 10 waits")
