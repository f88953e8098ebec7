"""A link: one case as both sides know it, and the state both last agreed on.

Kept in the state store (map ``intempus.link``, by link key), with two indexes (``by intempus id``
and ``by local id``) that the full scans read to tell which linked cases vanished. ``base`` is
the canonical case both sides held after the last merge: a side equal to it has not changed
(our own write coming back, or a change to fields we do not sync).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from ...core.state import StateStore
from .mapping import Canonical, Clash

LINKS = "intempus.link"
BY_INTEMPUS = "intempus.by-intempus"
BY_LOCAL = "intempus.by-local"
CONFLICTS = "intempus.conflict"
LOCAL_CREATION = "local:"
"""``creation_id`` prefix of an Intempus case the sync created from a local one."""


class Link(BaseModel):
    key: str
    intempus_id: int | None = None
    local_id: int | None = None
    base: Canonical | None = None
    intempus_lt: int | None = None
    """The newest logical timestamp applied from Intempus's feed (write answers carry none)."""
    local_version: int | None = None
    """The newest local version applied or written."""
    deleted: bool = False
    closed: bool = False
    """Intempus refused its delete (work reports): it was closed instead."""


class Links:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def get(self, key: str) -> Link:
        saved = await self.store.map_get(LINKS, key)
        return Link.model_validate_json(saved) if saved is not None else Link(key=key)

    async def save(self, link: Link) -> None:
        # The indexes first: a crash between them leaves an index naming a link not yet saved,
        # which the next apply of that case saves; never a saved link no scan can see.
        if link.intempus_id is not None:
            await self.store.map_put(BY_INTEMPUS, str(link.intempus_id), link.key)
        if link.local_id is not None:
            await self.store.map_put(BY_LOCAL, str(link.local_id), link.key)
        await self.store.map_put(LINKS, link.key, link.model_dump_json())

    async def linked_intempus(self, iid: int) -> bool:
        return await self.store.map_get(BY_INTEMPUS, str(iid)) is not None

    async def forget_deleted(self, link: Link) -> None:
        """A case deleted on both sides: out of the scans' indexes (it is gone from both, and a
        scan must not look for it), kept as a link so a late entry does nothing."""
        link.deleted = True
        if link.intempus_id is not None:
            await self.store.map_delete(BY_INTEMPUS, [str(link.intempus_id)])
        if link.local_id is not None:
            await self.store.map_delete(BY_LOCAL, [str(link.local_id)])
        await self.store.map_put(LINKS, link.key, link.model_dump_json())

    async def record(self, link: Link, clashes: list[Clash], now: float, note: str = "") -> None:
        """Every clash, kept for ``intempus conflicts``."""
        when = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        for clash in clashes:
            record: dict[str, Any] = {
                "case": link.key,
                "intempus_id": link.intempus_id,
                "local_id": link.local_id,
                "field": clash.field,
                "intempus": clash.intempus,
                "local": clash.local,
                "base": clash.base,
                "winner": clash.winner,
                "at": when,
                "note": note,
            }
            await self.store.map_put(
                CONFLICTS, f"{now:017.6f}:{link.key}:{clash.field}", json.dumps(record)
            )
