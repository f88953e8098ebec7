"""Applying a change of one case, from either side: state-based, so a change applied twice, late
or after a crash does no harm.

For an entry of case K (its link key):
1. Skip it if the link has seen a newer state of that side (a late or repeated entry), or if
   the side equals the state both last agreed on (``base``): our own write coming back, or a
   change to fields we do not sync. This is what stops echo loops; it needs no timestamp from a
   write's answer (Intempus's are stale or placeholders).
2. Read the other side's current state (one GET; the local side is always read afresh, since
   its writes are conditional on the version read).
3. Merge three ways against ``base`` (``mapping.merge``); write to each side only the fields that
   differ from the result (nothing when nothing differs); record every clash.
4. Save the result as the new ``base``.

A crash anywhere leaves a state the next apply converges from: creates are idempotent on both
sides (``creation_id = local:<id>`` on Intempus, ``Idempotency-Key`` on the store), an update
whose write landed finds nothing left to write, and the local store's writes are conditional
(``If-Match``), so a user's edit between our read and our write is never overwritten unseen.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

from ...connectors.case_store.client import CaseMissing, CaseStoreClient, VersionMismatch
from ...connectors.intempus.client import CaseGone, DeleteOutcome, IntempusClient
from ...core.clock import Clock
from ...core.errors import InvalidInput, PermanentError, TransientError
from ...core.state import InboxEntry, StateStore
from .links import LOCAL_CREATION, Link, Links
from .mapping import Canonical, Clash, from_intempus, from_local, merge, to_intempus, to_local
from .source import FIRST_LT, FIRST_VERSION

log = logging.getLogger("integration.intempus")

NUMBERS_TTL = 10.0
"""Seconds a listing of the local cases by number is reused when matching (see _local_numbers)."""

CLOSED = {"active": False, "permit_new_workreports": False}
"""What closing a case Intempus will not delete means: no longer active, no new work reports."""


class CaseSink:
    def __init__(
        self,
        intempus: IntempusClient,
        local: CaseStoreClient,
        store: StateStore,
        clock: Clock,
        *,
        policy: Literal["intempus", "local"] = "intempus",
        delete_fallback: Literal["close", "dead-letter"] = "close",
        match_by_number: bool = True,
    ) -> None:
        self.intempus = intempus
        self.local = local
        self.links = Links(store)
        self.clock = clock
        self.policy = policy
        self.delete_fallback = delete_fallback
        self.match_by_number = match_by_number
        self._first_contact = asyncio.Lock()
        """Held while a case met for the first time is matched or created on the other side:
        two cases of one pair met from both sides at once must not both be created, or both
        matched."""
        self._first: dict[str, int] = {}
        self._numbers: dict[tuple[Any, Any], list[int]] = {}
        self._numbers_at = float("-inf")
        self.conflicts = 0
        self.writes: dict[str, int] = {}
        """Writes made, by side and operation (``intempus.patch``): the metrics' figures."""

    async def apply(self, entry: InboxEntry) -> None:
        link = await self.links.get(entry.key)
        row: dict[str, Any] = json.loads(entry.payload)
        if link.deleted:
            if entry.kind == "intempus.row" and link.intempus_id is None:
                # Created in Intempus from a local case that was deleted before its link was
                # saved (a crash in between): the local delete reaches it now.
                await self._delete_intempus(link, int(row["id"]))
            return  # gone from both sides: a late entry of it changes nothing
        try:
            if entry.kind == "intempus.row":
                await self._intempus_changed(link, row)
            elif entry.kind == "local.row":
                await self._local_changed(link, row)
            elif entry.kind == "local.tombstone":
                if not self._stale_local(link, row):
                    await self._local_deleted(link)
            elif entry.kind == "local.absent":
                await self._local_deleted(link)
            elif entry.kind == "intempus.absent":
                await self._intempus_gone(link, int(row["id"]))
            else:
                raise InvalidInput(f"unknown entry kind {entry.kind!r}")
        except (VersionMismatch, CaseMissing) as exc:
            # Someone wrote (or deleted: a tombstone cannot be patched, 404) the local case
            # between our read and our write: read it again.
            raise TransientError(str(exc), maybe_applied=False) from exc

    async def reconcile(self, key: str) -> None:
        """Read both sides of case ``key`` afresh and merge them (``verify --repair``)."""
        link = await self.links.get(key)
        if link.deleted:
            return
        intempus_row = await self._intempus_row(link)
        local_row = await self._local_row(link)
        if local_row is not None and local_row.get("deleted"):
            await self._local_deleted(link)
        elif intempus_row is None and link.intempus_id is not None:
            await self._intempus_gone(link, link.intempus_id)
        else:
            await self._converge(link, intempus_row, local_row)

    # -- a side changed ----------------------------------------------------------------------

    async def _intempus_changed(self, link: Link, row: dict[str, Any]) -> None:
        iid, lt = int(row["id"]), int(row["logical_timestamp"])
        if link.intempus_id == iid and link.intempus_lt is not None and lt <= link.intempus_lt:
            return  # a state older than one already applied
        state = from_intempus(row)
        link.intempus_id = iid
        if link.base is not None and state == link.base:
            link.intempus_lt = lt
            await self.links.save(link)
            return
        local_row = await self._local_row(link)
        if local_row is not None and local_row.get("deleted"):
            await self._local_deleted(link, intempus_row=row)
            return
        await self._converge(link, row, local_row, intempus_lt=lt)

    @staticmethod
    def _stale_local(link: Link, row: dict[str, Any]) -> bool:
        """A local state no newer than one already applied or written: our own write coming
        back, or an older state. A tombstone too: when Intempus wins a delete/update clash
        applied from Intempus's entry first, the row is restored (a newer version) before the
        tombstone's own entry comes; applying that entry then would delete the case in Intempus
        while the store keeps it restored."""
        return (
            link.local_id == int(row["id"])
            and link.local_version is not None
            and int(row["version"]) <= link.local_version
        )

    async def _local_changed(self, link: Link, row: dict[str, Any]) -> None:
        lid, version = int(row["id"]), int(row["version"])
        if self._stale_local(link, row):
            return  # our own write coming back, or an older state
        state = from_local(row)
        link.local_id = lid
        if link.base is not None and state == link.base:
            link.local_version = version
            await self.links.save(link)
            return
        intempus_row = await self._intempus_row(link)
        if intempus_row is None and link.intempus_id is not None:
            await self._intempus_gone(link, link.intempus_id)
            return
        # The local side is read again: its writes are conditional on the version read, and
        # this entry's may already be old.
        await self._converge(link, intempus_row, await self._local_row(link))

    async def _converge(
        self,
        link: Link,
        intempus_row: dict[str, Any] | None,
        local_row: dict[str, Any] | None,
        *,
        intempus_lt: int | None = None,
    ) -> None:
        if intempus_row is None and local_row is None:
            return
        if local_row is not None and local_row.get("deleted"):
            # Deleted locally since the entry being applied was read (the local side is read
            # afresh): that delete is the local state now. Merging a tombstone would patch it
            # (a 404, the case's later entries blocked behind a dead letter) or create it in
            # Intempus.
            await self._local_deleted(link, intempus_row=intempus_row)
            return
        if local_row is None:
            assert intempus_row is not None
            await self._create_local(link, intempus_row, intempus_lt)
            return
        if intempus_row is None:
            await self._create_intempus(link, local_row)
            return
        mine = from_intempus(intempus_row)
        theirs = from_local(local_row)
        merged = merge(link.base, mine, theirs, self.policy)
        iid, lid = int(intempus_row["id"]), int(local_row["id"])
        link.intempus_id, link.local_id = iid, lid
        version = int(local_row["version"])
        if merged.for_local:
            written = await self.local.patch(lid, to_local(merged.for_local), if_match=version)
            version = int(written["version"])
            self._count("local.patch")
        if merged.for_intempus:
            try:
                await self.intempus.patch(iid, to_intempus(merged.for_intempus))
            except CaseGone:
                await self._intempus_gone(link, iid)
                return
            self._count("intempus.patch")
        if merged.clashes:
            await self._clashed(link, merged.clashes)
        link.base = merged.result
        link.local_version = max(version, link.local_version or 0)
        if intempus_lt is not None:
            link.intempus_lt = max(intempus_lt, link.intempus_lt or 0)
        await self.links.save(link)

    async def _create_local(
        self, link: Link, intempus_row: dict[str, Any], intempus_lt: int | None
    ) -> None:
        if link.key.startswith("l"):
            # Born locally and now gone there: that is a delete, not a case to create again.
            await self._local_deleted(link, intempus_row=intempus_row)
            return
        state = from_intempus(intempus_row)
        iid = int(intempus_row["id"])
        async with self._first_contact:
            match = None
            if await self._existed_first(FIRST_LT, intempus_row.get("logical_timestamp")):
                match = await self._local_match(state, iid)
            if match is not None:
                # The same case already exists locally, unlinked: link it (its key becomes this
                # one) and merge the two as a first contact (the policy side wins each clash).
                linked = await self.local.patch(
                    int(match["id"]), {"intempus_id": iid}, if_match=int(match["version"])
                )
                self._count("local.link")
                link.local_id = int(linked["id"])
                log.info("case %s: matched local case %s by number", link.key, link.local_id)
                await self._converge(link, intempus_row, linked, intempus_lt=intempus_lt)
                return
            await self._create_local_copy(link, state, iid, intempus_lt)

    async def _create_local_copy(
        self, link: Link, state: Canonical, iid: int, intempus_lt: int | None
    ) -> None:
        created = await self.local.create(
            {**to_local(state), "intempus_id": iid}, idempotency_key=f"intempus-{iid}"
        )
        self._count("local.create")
        link.intempus_id, link.local_id = iid, int(created["id"])
        link.local_version = int(created["version"])
        link.base = state
        if intempus_lt is not None:
            link.intempus_lt = intempus_lt
        await self.links.save(link)
        log.info("case %s: created locally as %s from Intempus %s", link.key, link.local_id, iid)

    async def _create_intempus(self, link: Link, local_row: dict[str, Any]) -> None:
        state = from_local(local_row)
        lid = int(local_row["id"])
        async with self._first_contact:
            fresh = await self.local.get(lid)
            if fresh is None or fresh.get("intempus_id") is not None:
                return  # deleted meanwhile, or linked by the other side's first contact
            match = None
            if await self._existed_first(FIRST_VERSION, fresh.get("version")):
                match = await self._intempus_match(state, lid)
            if match is not None:
                # Link by setting the local row's intempus_id: from now on the case is the
                # Intempus case's key, under which its entries are merged.
                await self.local.patch(lid, {"intempus_id": match}, if_match=int(fresh["version"]))
                self._count("local.link")
                log.info("case %s: matched Intempus case %s by number", link.key, match)
                return
            await self._create_intempus_copy(link, state, lid, int(fresh["version"]))

    async def _create_intempus_copy(
        self, link: Link, state: Canonical, lid: int, version: int
    ) -> None:
        # Intempus answers a repeated creation_id with the case it made the first time: a create
        # whose answer was lost (a crash, a timeout) is sent again without making a second.
        created = await self.intempus.create(to_intempus(state), f"{LOCAL_CREATION}{lid}")
        self._count("intempus.create")
        link.local_id, link.intempus_id = lid, int(created["id"])
        link.local_version = max(version, link.local_version or 0)
        link.base = state  # its logical timestamp is a placeholder: the feed brings the real one
        await self.links.save(link)
        log.info("case %s: created in Intempus as %s", link.key, link.intempus_id)

    # -- deletes -----------------------------------------------------------------------------

    async def _local_deleted(
        self, link: Link, *, intempus_row: dict[str, Any] | None = None
    ) -> None:
        """The local case is gone (a tombstone, or no longer listed)."""
        if intempus_row is None:
            intempus_row = await self._intempus_row(link)
        if intempus_row is None:
            await self.links.forget_deleted(link)  # gone there too (or never made it there)
            return
        iid = int(intempus_row["id"])
        link.intempus_id = iid
        current = from_intempus(intempus_row)
        if link.base is not None and current != link.base:
            # Changed in Intempus since both last agreed: a delete/update clash.
            clash = Clash("(deleted locally)", "changed", "deleted", None, self.policy)
            await self._clashed(link, [clash])
            if self.policy == "intempus":
                await self._restore_local(link, current)
                return
        await self._delete_intempus(link, iid)

    async def _delete_intempus(self, link: Link, iid: int) -> None:
        outcome = await self.intempus.delete(iid)
        self._count("intempus.delete")
        if outcome is DeleteOutcome.REFUSED:
            if self.delete_fallback == "dead-letter":
                raise PermanentError(
                    f"Intempus refuses to delete case {iid} (work reports or child cases are "
                    "attached); the local case stays deleted",
                    blocking=False,
                )
            row = await self.intempus.get(iid)
            if row is not None and any(row.get(k) is not v for k, v in CLOSED.items()):
                await self.intempus.patch(iid, CLOSED)
                self._count("intempus.close")
            link.closed = True
            log.info("case %s: Intempus refuses to delete %s; closed it instead", link.key, iid)
        await self.links.forget_deleted(link)

    async def _restore_local(self, link: Link, state: Canonical) -> None:
        if link.local_id is None:
            return
        tombstone = await self.local.get(link.local_id, include_deleted=True)
        if tombstone is None or not tombstone.get("deleted"):
            return
        restored = await self.local.restore(
            link.local_id, if_match=int(tombstone["version"]), fields=to_local(state)
        )
        self._count("local.restore")
        link.local_version = int(restored["version"])
        link.base = state
        await self.links.save(link)
        log.info("case %s: deleted locally but changed in Intempus; restored", link.key)

    async def _intempus_gone(self, link: Link, iid: int) -> None:
        """A full scan did not list it (or a write found it missing): only a 404 proves it."""
        if await self.intempus.get(iid) is not None:
            return
        local_row = await self._local_row(link)
        if local_row is None or local_row.get("deleted"):
            await self.links.forget_deleted(link)
            return
        current = from_local(local_row)
        if link.base is not None and current != link.base:
            # Intempus is the system of record: the delete wins; the local edits are kept in the
            # conflict record so a person can restore them.
            note = f"deleted in Intempus; the local case was: {json.dumps(current)}"
            clash = Clash("(deleted in Intempus)", "deleted", "changed", None, "intempus")
            await self._clashed(link, [clash], note)
        await self.local.delete(int(local_row["id"]), if_match=int(local_row["version"]))
        self._count("local.delete")
        await self.links.forget_deleted(link)
        log.info("case %s: deleted in Intempus; deleted locally", link.key)

    # -- first contact: the same case on both sides, unlinked --------------------------------

    async def _existed_first(self, mark: str, position: object) -> bool:
        """Whether a case stood at or below where its side was when the sync first read it:
        it existed before the sync, so the other side may hold it unlinked. A case made later
        is new, and looking for a twin would cost requests for nothing (and could pair two
        cases that only share a number)."""
        if not self.match_by_number or not isinstance(position, int):
            return False
        first = self._first.get(mark)
        if first is None:
            saved = await self.links.store.meta_get(mark)
            if saved is None:
                return False
            first = self._first[mark] = int(saved)
        return position <= first

    async def _local_match(self, state: Canonical, iid: int) -> dict[str, Any] | None:
        """The one live, unlinked local case of this customer and number, if it is the only one
        of its number on both sides."""
        if not self.match_by_number or not state.get("number"):
            return None
        customer, number = state["customer"], state["number"]
        same = (await self._local_numbers()).get((customer, number), [])
        if len(same) != 1:
            return None
        row = await self.local.get(same[0])
        if row is None or row.get("intempus_id") is not None or row.get("number") != number:
            return None
        theirs = await self._with_number(customer, number)
        return row if theirs is not None and [int(r["id"]) for r in theirs] == [iid] else None

    async def _intempus_match(self, state: Canonical, lid: int) -> int | None:
        """The one Intempus case of this customer and number not linked yet, if the local case
        is the only one of its number locally."""
        if not self.match_by_number or not state.get("number"):
            return None
        customer, number = state["customer"], state["number"]
        theirs = await self._with_number(customer, number)
        if theirs is None or len(theirs) != 1:
            return None
        if str(theirs[0].get("creation_id") or "").startswith(LOCAL_CREATION):
            return None  # our own copy of a local case
        iid = int(theirs[0]["id"])
        if await self.links.linked_intempus(iid):
            return None
        mine = (await self._local_numbers()).get((customer, number), [])
        if lid not in mine:  # created after the last listing: list again
            mine = (await self._local_numbers(fresh=True)).get((customer, number), [])
        return iid if mine == [lid] else None

    async def _with_number(self, customer: Any, number: Any) -> list[dict[str, Any]] | None:
        try:
            return await self.intempus.with_number(int(customer), str(number))
        except PermanentError as exc:
            # An Intempus without the number filter: no matching, creates as usual.
            log.warning("cannot match cases by number (%s); creating instead", exc)
            self.match_by_number = False
            return None

    async def _local_numbers(self, fresh: bool = False) -> dict[tuple[Any, Any], list[int]]:
        """Live local cases by (customer, number), listed at most every ``NUMBERS_TTL``
        seconds: a first run meets every case for the first time, and listing the store for
        each would cost a full list per case. A candidate found here is read again before use."""
        if fresh or self.clock.now() - self._numbers_at >= NUMBERS_TTL:
            numbers: dict[tuple[Any, Any], list[int]] = {}
            async for rows in self.local.all_cases():
                for row in rows:
                    numbers.setdefault((row.get("customer"), row.get("number")), []).append(
                        int(row["id"])
                    )
            self._numbers, self._numbers_at = numbers, self.clock.now()
        return self._numbers

    # -- reading the sides -------------------------------------------------------------------

    async def _intempus_row(self, link: Link) -> dict[str, Any] | None:
        iid = link.intempus_id
        if iid is None and link.key.startswith("i"):
            iid = int(link.key[1:])
        if iid is None:
            return None  # born locally and not created in Intempus yet
        return await self.intempus.get(iid)

    async def _local_row(self, link: Link) -> dict[str, Any] | None:
        if link.local_id is not None:
            return await self.local.get(link.local_id, include_deleted=True)
        if link.key.startswith("l"):
            return await self.local.get(int(link.key[1:]), include_deleted=True)
        rows = await self.local.find_by_intempus_id(int(link.key[1:]), include_deleted=True)
        live = [r for r in rows if not r.get("deleted")]
        return (live or rows)[0] if rows else None

    async def _clashed(self, link: Link, clashes: list[Clash], note: str = "") -> None:
        self.conflicts += len(clashes)
        await self.links.record(link, clashes, self.clock.now(), note)
        for clash in clashes:
            log.info(
                "case %s: %s changed on both sides; %s wins (intempus %r, local %r)",
                link.key,
                clash.field,
                clash.winner,
                clash.intempus,
                clash.local,
            )

    def _count(self, what: str) -> None:
        self.writes[what] = self.writes.get(what, 0) + 1
