"""A link: one record as our system and one provider connection know it, and what the sync last
made both sides agree on.

Kept per connection in the state store (map ``crm.<connection>.link``, by key), with an index by
provider id (``crm.<connection>.by-provider``) that the absence scans read to find records gone
from a provider that does not list its deletes. Every decision a rule took is kept too
(``crm.<connection>.decision``, the latest per record), and every clash
(``crm.<connection>.clash``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from ...core.state import StateStore


class Link(BaseModel):
    key: str
    object: str
    our_id: int | None = None
    provider_id: str | None = None
    base: dict[str, Any] | None = None
    """The canonical fields both sides held after the last merge (None: never agreed)."""
    written: dict[str, Any] = Field(default_factory=dict)
    """The values we last wrote to the provider, per field: a provider snapshot still holding
    one is our own write coming back, not a change (even where ``base`` moved on since)."""
    written_at: float | None = None
    """The provider's modified time after our last write (our clock's time where the provider's
    answer does not say): a snapshot older than it was read before our write landed, so what it
    holds in the fields we wrote is obsolete, not a change."""
    provider_at: float | None = None
    """The provider's modified time of the newest snapshot applied."""
    internal_version: int | None = None
    """The newest version of our record applied or written."""
    state: Literal["live", "deleted", "archived"] = "live"
    creating: bool = False
    """A create at the provider was attempted and its answer not yet recorded: the next attempt
    must look for it first (a provider without an upsert)."""
    creating_by: str | None = None
    """Which sink made that attempt (a random id per process run)."""
    creating_at: float | None = None
    """When that attempt was made."""
    hops: list[float] = Field(default_factory=list)
    """When the sync carried a change of this record back the other way, lately (the ping-pong
    breaker)."""
    last_direction: str | None = None
    """The direction of the last carry (``in``: to our system; ``out``: to the provider)."""


def link_key(object: str, our_id: int | None, provider_id: str | None) -> str:
    """A record's key in a connection's order, the same whichever side it is read from: born in
    our system (``contact:l12``) or at the provider (``contact:p901``)."""
    return f"{object}:l{our_id}" if our_id is not None else f"{object}:p{provider_id}"


class Links:
    def __init__(self, store: StateStore, connection: str) -> None:
        self.store = store
        self.links = f"crm.{connection}.link"
        self.by_provider = f"crm.{connection}.by-provider"
        self.decisions = f"crm.{connection}.decision"
        self.clashes = f"crm.{connection}.clash"

    async def get(self, key: str) -> Link:
        saved = await self.store.map_get(self.links, key)
        if saved is not None:
            return Link.model_validate_json(saved)
        return Link(key=key, object=key.partition(":")[0])

    async def save(self, link: Link) -> None:
        # The index first: a crash between the two leaves an index naming a link not saved yet
        # (the next apply saves it), never a saved link no scan can find.
        if link.provider_id is not None:
            await self.store.map_put(
                self.by_provider, f"{link.object}:{link.provider_id}", link.key
            )
        await self.store.map_put(self.links, link.key, link.model_dump_json())

    async def decided(self, key: str, record: dict[str, Any]) -> None:
        await self.store.map_put(self.decisions, key, json.dumps(record, sort_keys=True))

    async def clashed(self, key: str, at: float, record: dict[str, Any]) -> None:
        await self.store.map_put(self.clashes, f"{at:017.6f}:{key}", json.dumps(record))
