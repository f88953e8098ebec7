"""The two sources of the Intempus ⇄ case store sync, both read from a position they hand out:

- ``IntempusChanges``: cases written after a logical timestamp (cursor paging), and every
  ``FULL_SCAN_INTERVAL`` (and after any loss) a full scan, the only way to see a delete and the
  net under a feed that may skip a late commit;
- ``LocalChanges``: the case store's change feed after a version, tombstones included; a 410 (the
  cursor is older than the tombstone horizon) turns into a full list of the store.

Both key an entry by the case's *link key*, the same from either side without any lookup (so the
two flows share one order and one case is applied one entry at a time):

- a case born in Intempus is ``i<intempus id>``; the sync creates its local copy with
  ``intempus_id`` set, so the local row names the same key;
- a case born locally is ``l<local id>``; the sync creates it in Intempus with
  ``creation_id = local:<local id>``, so the Intempus row names the same key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from ...connectors.case_store.client import CaseStoreClient, FeedExpired
from ...connectors.intempus.client import IntempusClient
from ...core.clock import Clock
from ...core.errors import PermanentError
from ...core.flow import Page, Received
from ...core.state import NewEntry, Rejected, StateStore
from .links import BY_INTEMPUS, BY_LOCAL, LOCAL_CREATION

log = logging.getLogger("integration.intempus")

INTEMPUS = "intempus"
LOCAL = "case-store"
ORDER = "cases"
"""Both flows' keys are link keys: they share one order."""

SCAN_DUE = "intempus:scan-due"
LAST_SCAN = "intempus:last-scan"
FIRST_LT = "intempus:first-read-lt"
FIRST_VERSION = "intempus:first-read-version"
"""Where each side stood when the sync first read it: a case at or below it existed before the
sync did, and only such a case is matched by number (see the sink's first contact)."""


def intempus_key(row: dict[str, Any]) -> str:
    creation = row.get("creation_id")
    if isinstance(creation, str) and creation.startswith(LOCAL_CREATION):
        return f"l{creation.removeprefix(LOCAL_CREATION)}"
    return f"i{row.get('id')}"


def local_key(row: dict[str, Any]) -> str:
    linked = row.get("intempus_id")
    return f"i{linked}" if linked is not None else f"l{row.get('id')}"


def _absent(doc: dict[str, Any], side: str) -> Page:
    """A synthetic "absent" page's entries: one per linked case a full listing did not show."""
    at = doc.get("at", "")
    return Page(
        [
            NewEntry(
                key=key,
                kind=f"{side}.absent",
                fingerprint=f"{side}-absent:{case_id}:{at}",
                payload=json.dumps({"id": int(case_id)}),
            )
            for case_id, key in doc["cases"].items()
        ]
    )


def _synthetic(kind: str, **fields: Any) -> bytes:
    """A page the source makes itself (a scan's verdict), told apart from a service's by
    ``"synthetic"``."""
    return json.dumps({"synthetic": kind, **fields}).encode()


class IntempusChanges:
    """Intempus's cases into the inbox: changed ones at every poll, all of them at a full scan."""

    name = INTEMPUS

    def __init__(
        self,
        client: IntempusClient,
        store: StateStore,
        clock: Clock,
        *,
        full_scan_interval: float,
        max_delete_fraction: float,
    ) -> None:
        self.client = client
        self.store = store
        self.clock = clock
        self.full_scan_interval = full_scan_interval
        self.max_delete_fraction = max_delete_fraction
        self.guard_tripped = 0
        """Full scans whose deletes the mass-delete guard held back (a metric)."""

    async def fetch_after(self, position: float | None) -> AsyncIterator[Received]:
        lt = int(position) if position is not None else None
        started = self.clock.now()
        first = lt is None and await self.store.meta_get(FIRST_LT) is None
        async for page in self.client.changed_after(lt):
            if first and page.high_water is not None:
                # Before the first page's cases can be applied: they are the ones that may
                # already have an unlinked twin on the other side.
                await self.store.meta_put(FIRST_LT, str(page.high_water))
                first = False
            # The new high-water mark (the first page's header) is stored with the last page
            # only: a crash between pages re-reads the pass, and nothing is skipped.
            mark = page.high_water if page.last else None
            yield Received(page.body, position=float(mark) if mark is not None else None)
        if lt is None and await self.store.meta_get(SCAN_DUE) is None:
            # The first read lists every case: it is a full scan already (with no link yet,
            # there is nothing it could find gone).
            await self.store.meta_put(LAST_SCAN, str(started))
            return
        if await self._scan_due():
            async for received in self._full_scan():
                yield received

    async def _scan_due(self) -> bool:
        if await self.store.meta_get(SCAN_DUE) is not None:
            return True
        last = await self.store.meta_get(LAST_SCAN)
        return last is None or self.clock.now() - float(last) >= self.full_scan_interval

    async def _full_scan(self) -> AsyncIterator[Received]:
        """Every case, then, if the scan was complete, the linked cases it did not list. A scan
        that fails part-way raises before any absence is concluded."""
        started = self.clock.now()
        seen: set[int] = set()
        async for page in self.client.all_cases():
            seen.update(int(row["id"]) for row in page.rows if isinstance(row.get("id"), int))
            yield Received(page.body)
        linked = {int(iid): key async for iid, key in self.store.map_iter(BY_INTEMPUS)}
        absent = {iid: key for iid, key in linked.items() if iid not in seen}
        if linked and len(absent) > self.max_delete_fraction * len(linked):
            self.guard_tripped += 1
            log.warning(
                "full scan: %d of %d linked cases are gone from Intempus, more than the "
                "%.0f%% INTEMPUS_MAX_DELETE_FRACTION allows; deleting none of them (check "
                "Intempus, then raise the fraction for one run to let them go)",
                len(absent),
                len(linked),
                self.max_delete_fraction * 100,
            )
        elif absent:
            yield Received(_synthetic("absent", at=started, cases=absent))
        await self.store.meta_put(LAST_SCAN, str(started))
        await self.store.meta_put(SCAN_DUE, None)
        log.info("full scan of Intempus: %d case(s), %d gone", len(seen), len(absent))

    def parse(self, body: bytes) -> Page:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("synthetic") == "absent":
            return _absent(doc, "intempus")
        entries: list[NewEntry] = []
        rejects: list[Rejected] = []
        for row in doc.get("objects", []) if isinstance(doc, dict) else []:
            if not isinstance(row, dict):
                continue
            payload = json.dumps(row)
            if not isinstance(row.get("id"), int) or not isinstance(
                row.get("logical_timestamp"), int
            ):
                rejects.append(
                    Rejected(
                        key=f"i{row.get('id')}",
                        fingerprint=f"intempus-bad:{payload}"[:500],
                        payload=payload,
                        reason="an Intempus case without an integer id or logical_timestamp",
                    )
                )
                continue
            entries.append(
                NewEntry(
                    key=intempus_key(row),
                    kind="intempus.row",
                    fingerprint=f"intempus:{row['id']}:{row['logical_timestamp']}",
                    payload=payload,
                )
            )
        return Page(entries, rejects)

    async def recover(self, reason: str, horizon: float) -> None:
        """What may have been received and not stored is found by a full scan: the next poll
        runs one."""
        await self.store.meta_put(SCAN_DUE, reason)


class LocalChanges:
    """The case store's change feed into the inbox; a full list when the feed refuses a cursor
    older than its tombstone horizon."""

    name = LOCAL

    def __init__(self, client: CaseStoreClient, store: StateStore) -> None:
        self.client = client
        self.store = store

    async def fetch_after(self, position: float | None) -> AsyncIterator[Received]:
        after = int(position) if position is not None else None
        if after is None and await self.store.meta_get(FIRST_VERSION) is None:
            await self.store.meta_put(FIRST_VERSION, str(await self.client.high_water()))
        while True:
            try:
                page = await self.client.changes(after)
            except FeedExpired:
                async for received in self._reconcile():
                    yield received
                return
            yield Received(page.body, position=float(page.next_after))
            if page.last:
                return
            after = page.next_after

    async def _reconcile(self) -> AsyncIterator[Received]:
        """Every live row, then the linked cases no longer listed (their tombstones purged),
        then the feed carries on from the high-water mark read before the list."""
        high_water = await self.client.high_water()
        seen: set[int] = set()
        async for rows in self.client.all_cases():
            seen.update(int(row["id"]) for row in rows)
            yield Received(json.dumps({"items": rows}).encode())
        linked = {int(lid): key async for lid, key in self.store.map_iter(BY_LOCAL)}
        gone = {lid: key for lid, key in linked.items() if lid not in seen}
        yield Received(_synthetic("absent", cases=gone), position=float(high_water))
        log.warning(
            "case store: the change feed no longer reaches back to our position; reconciled "
            "from a full list (%d live, %d gone)",
            len(seen),
            len(gone),
        )

    def parse(self, body: bytes) -> Page:
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise PermanentError("case store: a change feed page that is not an object")
        if doc.get("synthetic") == "absent":
            return _absent(doc, "local")
        entries: list[NewEntry] = []
        rejects: list[Rejected] = []
        for row in doc.get("items", []):
            payload = json.dumps(row)
            if not isinstance(row, dict) or not isinstance(row.get("id"), int):
                rejects.append(
                    Rejected(
                        key="l?",
                        fingerprint=f"local-bad:{payload}"[:500],
                        payload=payload,
                        reason="a case store row without an integer id",
                    )
                )
                continue
            entries.append(
                NewEntry(
                    key=local_key(row),
                    kind="local.tombstone" if row.get("deleted") else "local.row",
                    fingerprint=f"local:{row['id']}:{row.get('version')}",
                    payload=payload,
                )
            )
        return Page(entries, rejects)

    async def recover(self, reason: str, horizon: float) -> None:
        """Nothing to do: the feed is read again from the stored position, which moves only
        with a stored page, and the store keeps every row's last state in it."""
        return None
