"""The CRM sync's sources, per connection: each provider object's changes, and our system's
change feed.

- ``ProviderChanges`` reads one object of one provider account by modified time, from the
  position stored after the last pass less ``overlap`` (a commit that lands late, a timestamp
  shared with the next record, a drifting cursor: the re-read costs a few duplicates, which the
  inbox drops by fingerprint). Every ``full_scan_interval`` it lists every record and asks the
  provider about the linked ones the list did not show: the only way to see a delete at a
  provider that does not list deletes (HubSpot, Pipedrive), and a net under the feed.
- ``InternalChanges`` reads our system's feed (its outbox: one version per write, tombstones
  included) after the stored version. Versions our own sync wrote *for this connection* are left
  out here (origin ``sync:<connection>``: the third loop-prevention layer); another connection's
  writes are changes like a person's.

Both key an entry by the record's link key (``links.link_key``), found from either side without a
lookup, so a connection's flows share one order and one record is applied one entry at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from typing import Any

from ...connectors.crm.base import Connector, ObjectName, RemoteRecord
from ...connectors.crm.internal import InternalClient
from ...core.clock import Clock
from ...core.flow import Page, Received
from ...core.state import NewEntry, Rejected, StateStore
from .canonical import content_hash
from .links import link_key

log = logging.getLogger("integration.crm")

PROVIDER_ROW = "provider.row"
PROVIDER_GONE = "provider.gone"
INTERNAL_ROW = "internal.row"
INTERNAL_TOMBSTONE = "internal.tombstone"


def origin_of(connection: str) -> str:
    """The ``X-Sync-Origin`` of what the sync writes to our system for ``connection``."""
    return f"sync:{connection}"


def remote_key(record: dict[str, Any]) -> str:
    our_id = record.get("our_id")
    if isinstance(our_id, str) and our_id.isdigit():
        return link_key(record["object"], int(our_id), None)
    return link_key(record["object"], None, str(record.get("id")))


def internal_key(connection: str, row: dict[str, Any]) -> str:
    links = row.get("links") or {}
    if row.get("born") == connection and isinstance(links.get(connection), str):
        return link_key(row["object"], None, links[connection])
    return link_key(row["object"], int(row["id"]), None)


class ProviderChanges:
    def __init__(
        self,
        connection: str,
        object: ObjectName,
        connector: Connector,
        store: StateStore,
        clock: Clock,
        *,
        overlap: float,
        full_scan_interval: float,
    ) -> None:
        self.connection = connection
        self.object = object
        self.connector = connector
        self.store = store
        self.clock = clock
        self.overlap = overlap
        self.full_scan_interval = full_scan_interval
        self.name = f"{connection}.{object}"
        self._scanned = f"crm:{self.name}:last-scan"

    async def fetch_after(self, position: float | None) -> AsyncIterator[Received]:
        started = self.clock.now()
        since = None if position is None else position - self.overlap
        newest = position
        async for records in self.connector.changed_since(self.object, since):
            newest = max([newest or 0.0, *(r.updated_at for r in records)])
            yield Received(_page(records))
        # The position moves with the pass's last page only: a pass cut short is read again.
        yield Received(_page([]), position=newest if newest is not None else started)
        if since is None:
            await self.store.meta_put(self._scanned, str(started))  # a full list already
        elif await self._scan_due():
            async for received in self._full_scan(started):
                yield received

    async def _scan_due(self) -> bool:
        last = await self.store.meta_get(self._scanned)
        return last is None or self.clock.now() - float(last) >= self.full_scan_interval

    async def _full_scan(self, started: float) -> AsyncIterator[Received]:
        seen: set[str] = set()
        async for records in self.connector.changed_since(self.object, None):
            seen.update(r.id for r in records if not r.deleted)
            yield Received(_page(records))
        prefix = f"{self.object}:"
        linked = [
            name.removeprefix(prefix)
            async for name, _ in self.store.map_iter(f"crm.{self.connection}.by-provider")
            if name.startswith(prefix)
        ]
        missing = [pid for pid in linked if pid not in seen]
        gone: list[RemoteRecord] = []
        for start in range(0, len(missing), 100):
            chunk = missing[start : start + 100]
            found = await self.connector.get(self.object, chunk)
            for pid, record in zip(chunk, found, strict=True):
                if record is None or record.deleted:
                    gone.append(
                        record
                        or RemoteRecord(self.object, pid, {}, started, deleted=True, our_id=None)
                    )
        if gone:
            yield Received(_page(gone, gone=True))
        await self.store.meta_put(self._scanned, str(started))
        log.info(
            "%s: full scan, %d live record(s), %d linked one(s) gone",
            self.name,
            len(seen),
            len(gone),
        )

    def parse(self, body: bytes) -> Page:
        doc = json.loads(body)
        entries: list[NewEntry] = []
        rejects: list[Rejected] = []
        kind = PROVIDER_GONE if doc.get("gone") else PROVIDER_ROW
        for record in doc.get("records", []):
            payload = json.dumps(record, sort_keys=True)
            if not isinstance(record.get("id"), str) or not isinstance(
                record.get("updated_at"), int | float
            ):
                rejects.append(
                    Rejected(
                        key=f"{self.object}:p?",
                        fingerprint=f"{self.name}:bad:{payload}"[:500],
                        payload=payload,
                        reason=f"{self.name}: a record without an id or modified time",
                    )
                )
                continue
            state = "gone" if kind == PROVIDER_GONE else "deleted" if record["deleted"] else "row"
            # The content is part of the fingerprint: two states stamped with one second (a
            # provider's times are whole seconds) are two changes, not one served twice.
            content = content_hash(record.get("fields") or {})[:16]
            entries.append(
                NewEntry(
                    key=remote_key(record),
                    kind=kind,
                    fingerprint=(
                        f"{self.name}:{record['id']}:{record['updated_at']}:{state}:{content}"
                    ),
                    payload=payload,
                )
            )
        return Page(entries, rejects)

    async def recover(self, reason: str, horizon: float) -> None:
        """Nothing to do: the position moves only with a stored pass, and the pass is read
        again from it."""
        return None


def _page(records: Sequence[RemoteRecord], *, gone: bool = False) -> bytes:
    doc: dict[str, Any] = {"records": [{**asdict(r), "fields": dict(r.fields)} for r in records]}
    if gone:
        doc["gone"] = True
    return json.dumps(doc).encode()


class InternalChanges:
    def __init__(
        self, connection: str, objects: Sequence[ObjectName], client: InternalClient
    ) -> None:
        self.connection = connection
        self.objects = set(objects)
        self.client = client
        self.name = f"{connection}.internal"
        self.origin = origin_of(connection)

    async def fetch_after(self, position: float | None) -> AsyncIterator[Received]:
        after = int(position) if position is not None else None
        while True:
            page = await self.client.changes(after)
            yield Received(page.body, position=float(page.next_after))
            if page.last:
                return
            after = page.next_after

    def parse(self, body: bytes) -> Page:
        doc = json.loads(body)
        entries: list[NewEntry] = []
        for row in doc.get("items", []):
            if row.get("object") not in self.objects or row.get("origin") == self.origin:
                continue  # not synced here, or our own write for this connection coming back
            entries.append(
                NewEntry(
                    key=internal_key(self.connection, row),
                    kind=INTERNAL_TOMBSTONE if row.get("deleted") else INTERNAL_ROW,
                    fingerprint=f"{self.name}:v{row['version']}",
                    payload=json.dumps(row, sort_keys=True),
                )
            )
        return Page(entries)

    async def recover(self, reason: str, horizon: float) -> None:
        """Nothing to do: the feed is read again from the stored version."""
        return None
