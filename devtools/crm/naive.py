"""The naive baseline of the CRM bench: one HubSpot call per change in our system's feed.

It reads our feed (``GET /changes``) and, for each version a person wrote, sends one request at
once: the record's first version is a create (``POST /crm/v3/objects/contacts``), every later one
an update (``PATCH /crm/v3/objects/contacts/{id}``), a tombstone a delete. No batching, no
coalescing of several versions of one record, no budget: what an integration does that maps each
event to a call. It keeps our id in HubSpot's ``our_id`` property, as the sync does, so both are
checked the same way.
"""

from __future__ import annotations

from typing import Any

import aiohttp

CONTACTS = "/crm/v3/objects/contacts"
FIELDS = {
    "first_name": "firstname",
    "last_name": "lastname",
    "email": "email",
    "phone": "phone",
}
"""Our contact fields the bench edits, by HubSpot property (the sync's default mapping)."""


class NaiveError(RuntimeError):
    """HubSpot refused a call: the naive sync has no retry, so its run is a failure."""


def properties(row: dict[str, Any]) -> dict[str, str]:
    return {prop: str(row[ours] or "") for ours, prop in FIELDS.items()}


class NaiveSync:
    def __init__(self, session: aiohttp.ClientSession, internal_url: str, hubspot_url: str):
        self.session = session
        self.internal_url = internal_url.rstrip("/")
        self.hubspot_url = hubspot_url.rstrip("/")
        self.after = 0
        self.provider_ids: dict[int, str] = {}
        self.calls = 0
        self.entries = 0
        """Feed entries applied (our feed shows a record once, at its newest version, however
        many versions were written since the last read)."""

    async def drain(self) -> int:
        """Apply every change in the feed after the last one applied; the changes applied."""
        applied = 0
        while True:
            async with self.session.get(
                f"{self.internal_url}/changes", params={"after": str(self.after), "limit": "500"}
            ) as response:
                response.raise_for_status()
                page = await response.json()
            for row in page["items"]:
                if row["object"] == "contact" and row["origin"] == "user":
                    await self._apply(row)
                    applied += 1
                    self.entries += 1
            if not page["items"]:
                return applied
            self.after = int(page["next_after"])

    async def _apply(self, row: dict[str, Any]) -> None:
        our_id = int(row["id"])
        known = self.provider_ids.get(our_id)
        if row["deleted"]:
            if known is not None:
                await self._call("DELETE", f"{CONTACTS}/{known}", None)
            return
        if known is None:
            body = {"properties": {**properties(row), "our_id": str(our_id)}}
            answer = await self._call("POST", CONTACTS, body)
            self.provider_ids[our_id] = str(answer["id"])
        else:
            await self._call("PATCH", f"{CONTACTS}/{known}", {"properties": properties(row)})

    async def _call(self, method: str, path: str, body: Any) -> Any:
        self.calls += 1
        async with self.session.request(method, self.hubspot_url + path, json=body) as response:
            raw = await response.read()
            if response.status >= 300:
                raise NaiveError(f"{method} {path}: {response.status} {raw[:200]!r}")
            return await response.json() if raw else None
