"""Applies one connection's entries, record by record: a provider's snapshot or delete, or a
version (or tombstone) of our record. State-based: each entry is compared with the link (what
both sides last agreed on, and what we last wrote), so a late, repeated or echoed entry writes
nothing, and a record's latest state is what gets written.

The steps for a change (``docs/crm-sync.md``, *One record's way*): validate and map it into
canonical form (a refusal is a dead letter naming the field path and the rule), drop it if it is an
echo (the values we last wrote), merge it per field with the other side (owner first, then the
later change, our system on a tie), let the connection's rules decide the action (recorded per
record), map out and validate for the target, write (idempotent: upsert by our id at the provider,
an idempotency key and ``If-Match`` in our system), record the link. A record carried back and
forth more than ``breaker_hops`` times within ``breaker_window`` seconds with no person's change in
our system between is quarantined: a dead letter that blocks it until someone looks.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Any

from ...connectors.crm.base import Connector, ObjectName, RemoteRecord, Write
from ...connectors.crm.internal import InternalClient, RecordMissing, VersionMismatch
from ...core.clock import Clock
from ...core.errors import InvalidInput, PermanentError, TransientError
from ...core.merge import merge
from ...core.state import InboxEntry, StateStore
from .canonical import FIELDS, Canonical, validate
from .connections import Connection
from .links import Link, Links
from .mapping import to_canonical, to_provider
from .rules import Decision, Direction, Facts
from .source import (
    INTERNAL_ROW,
    INTERNAL_TOMBSTONE,
    PROVIDER_GONE,
    PROVIDER_ROW,
    origin_of,
)
from .writes import Writer

log = logging.getLogger("integration.crm")


def _epoch(text: Any) -> float:
    if isinstance(text, int | float):
        return float(text)
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


class _Gone(Exception):
    """The provider's record was deleted there (found when a write to it failed): the delete
    has been applied instead, and the entry is done."""


class Quarantined(PermanentError):
    """A record the sync carried back and forth too often: it waits, blocked, for a person."""


class CrmSink:
    def __init__(
        self,
        connection: Connection,
        connector: Connector,
        internal: InternalClient,
        store: StateStore,
        clock: Clock,
        *,
        writer: Writer,
        breaker_hops: int = 5,
        breaker_window: float = 60.0,
        create_horizon: float = 20.0,
    ) -> None:
        self.connection = connection
        self.name = connection.name
        self.connector = connector
        self.internal = internal
        self.links = Links(store, connection.name)
        self.clock = clock
        self.writer = writer
        self.rules = connection.rule_book()
        self.origin = origin_of(connection.name)
        self.breaker_hops = breaker_hops
        self.breaker_window = breaker_window
        self.create_horizon = create_horizon
        self.instance = uuid.uuid4().hex[:12]
        """This run's id, on the create intents it records (see ``_write_provider``)."""
        self.counts: dict[str, int] = {}
        """What the sink did, by outcome (``provider.write``, ``echo``, ``rule.skip``): metrics."""

    # -- entry points ------------------------------------------------------------------------

    async def apply(self, entry: InboxEntry) -> None:
        link = await self.links.get(entry.key)
        payload: dict[str, Any] = json.loads(entry.payload)
        if link.state == "deleted":
            self._count("late-after-delete")
            return  # deleted on both sides: a late entry of it changes nothing
        try:
            if entry.kind == PROVIDER_ROW:
                record = RemoteRecord(**payload)
                if record.deleted:
                    await self._provider_deleted(link, record.id)
                else:
                    await self._provider_changed(link, record)
            elif entry.kind == PROVIDER_GONE:
                await self._provider_deleted(link, str(payload["id"]))
            elif entry.kind == INTERNAL_ROW:
                await self._internal_changed(link, payload)
            elif entry.kind == INTERNAL_TOMBSTONE:
                await self._internal_deleted(link, payload)
            else:
                raise InvalidInput(f"unknown entry kind {entry.kind!r}")
        except VersionMismatch as exc:
            # A person wrote our record between our read and our write: read it again.
            raise TransientError(str(exc), maybe_applied=False) from exc
        except _Gone:
            return

    async def reconcile(self, key: str) -> None:
        """Read both sides of record ``key`` afresh and converge them (``verify --repair``),
        through the same steps as an entry: a tombstone of ours is carried out; a provider
        record gone (a purge the feed never showed) is written again from ours; otherwise the
        provider's record is merged as if just read, then ours, each against what both sides
        last agreed on."""
        link = await self.links.get(key)
        obj = self._object(link)
        if link.state == "deleted":
            return  # deleted on both sides, as for an entry
        ident = key.partition(":")[2]  # a record never applied has a link with its key only
        if link.our_id is None and ident.startswith("l"):
            link.our_id = int(ident[1:])
        if link.provider_id is None and ident.startswith("p"):
            link.provider_id = ident[1:]
        row = await self.internal.get(obj, link.our_id) if link.our_id is not None else None
        found = None
        if link.provider_id is not None:
            (found,) = await self.connector.get(obj, [link.provider_id])
        if row is not None and row.get("deleted"):
            await self._internal_deleted(link, row)
            return
        if found is None or found.deleted:
            if row is None:
                return
            # Forget what the provider was said to hold: the record is written afresh (an
            # upsert by our id, so one that is there after all is updated, not doubled).
            link.provider_id, link.base, link.written = None, None, {}
            link.state, link.creating, link.internal_version = "live", False, None
            await self._internal_changed(link, row)
            return
        link.provider_at, link.written = None, {}  # the provider's record taken as new to us
        await self._provider_changed(link, found)
        our_id = link.our_id
        if our_id is not None:
            link = await self.links.get(key)
            link.internal_version = None
            fresh = await self.internal.get(obj, our_id)
            if fresh is not None:
                await self._internal_changed(link, fresh)

    # -- the provider changed ----------------------------------------------------------------

    async def _provider_changed(self, link: Link, record: RemoteRecord) -> None:
        obj = self._object(link)
        if (
            link.provider_id == record.id
            and link.provider_at is not None
            and record.updated_at < link.provider_at
        ):
            # Older than a snapshot applied already. An equal time is applied: providers stamp
            # whole seconds (Pipedrive), so two states of one second are told apart by content
            # (a repeat of the same content is an echo and writes nothing).
            self._count("stale")
            return
        link.provider_id = record.id
        where = f"{self.name} {obj} {record.id}"
        mapping = self.connection.object_map(obj)
        theirs = to_canonical(obj, mapping, record.fields, where=where)
        synced = list(theirs)
        # What we wrote ourselves is no change of theirs (the second loop-prevention layer), and
        # neither is what a snapshot read before our write landed holds in the fields we wrote.
        before_ours = link.written_at is not None and record.updated_at < link.written_at
        theirs = {
            name: (link.base or {}).get(name, value)
            if name in link.written and (before_ours or link.written[name] == value)
            else value
            for name, value in theirs.items()
        }
        if link.base is not None and all(theirs[n] == link.base.get(n) for n in synced):
            link.provider_at = record.updated_at
            await self.links.save(link)
            self._count("echo")
            return
        row = await self.internal.get(obj, link.our_id) if link.our_id is not None else None
        if row is not None and row.get("deleted"):
            await self._internal_deleted(link, row)
            return
        if row is None:
            await self._create_internal(link, obj, record, theirs)
            return
        ours = self._canonical(obj, row, synced)
        merged = merge(
            synced,
            link.base,
            theirs,
            ours,
            provider_at=record.updated_at,
            internal_at=_epoch(row["updated_at"]),
            owner=self._owner,
        )
        decision = await self._decide(link, "in", obj, merged.result, set(merged.for_internal), row)
        self._hop(link, "in")
        version = int(row["version"])
        if decision.action == "skip":
            merged_result = {**merged.result, **{n: ours[n] for n in merged.for_internal}}
        else:
            merged_result = merged.result
            if merged.for_internal:
                written = await self.internal.patch(
                    obj, int(row["id"]), merged.for_internal, origin=self.origin, if_match=version
                )
                version = int(written["version"])
                self._count("internal.patch")
        if merged.for_provider and link.provider_id is not None:
            fields = {n: merged_result[n] for n in merged.for_provider}
            await self._write_provider(link, obj, merged_result, only=list(fields))
        await self._clashes(link, merged.clashes)
        self._carried(link, "in")
        link.base = merged_result
        link.provider_at = record.updated_at
        link.internal_version = max(version, link.internal_version or 0)
        await self.links.save(link)

    async def _create_internal(
        self, link: Link, obj: ObjectName, record: RemoteRecord, theirs: Canonical
    ) -> None:
        decision = await self._decide(link, "in", obj, theirs, set(theirs), None)
        link.provider_at = record.updated_at
        if decision.action in ("skip", "archive", "delete", "update_only"):
            await self.links.save(link)
            return
        if link.key.startswith(f"{obj}:l"):
            # Born in our system, and gone from it since: not a record to create again.
            await self.links.save(link)
            self._count("origin-gone")
            return
        self._hop(link, "in")
        body: dict[str, Any] = {
            **theirs,
            "links": {self.name: record.id},
            "born": self.name,
        }
        row = await self.internal.create(
            obj,
            body,
            origin=self.origin,
            idempotency_key=f"{self.name}:{obj}:{record.id}",
        )
        self._count("internal.create")
        self._carried(link, "in")
        link.our_id = int(row["id"])
        link.base = dict(theirs)
        link.internal_version = int(row["version"])
        await self.links.save(link)

    async def _provider_deleted(self, link: Link, provider_id: str) -> None:
        if link.provider_id is not None and link.provider_id != provider_id:
            return  # a record this link no longer points at
        link.provider_id = provider_id
        obj = self._object(link)
        action = self.connection.deletes.from_provider
        if link.our_id is not None and action != "skip":
            row = await self.internal.get(obj, link.our_id)
            if row is not None and not row.get("deleted"):
                if action == "delete":
                    try:
                        written = await self.internal.delete(
                            obj, link.our_id, origin=self.origin, if_match=int(row["version"])
                        )
                    except RecordMissing:
                        written = row
                    self._count("internal.delete")
                else:
                    written = await self.internal.patch(
                        obj,
                        link.our_id,
                        {"archived": True},
                        origin=self.origin,
                        if_match=int(row["version"]),
                    )
                    self._count("internal.archive")
                link.internal_version = int(written["version"])
        await self._record(link, "in", Decision("delete", None), f"deleted at {self.name}")
        link.state = "deleted"
        await self.links.save(link)

    # -- our system changed ------------------------------------------------------------------

    async def _internal_changed(self, link: Link, entry_row: dict[str, Any]) -> None:
        obj = self._object(link)
        our_id = int(entry_row["id"])
        version = int(entry_row["version"])
        if link.our_id == our_id and (link.internal_version or 0) >= version:
            self._count("stale")
            return
        if entry_row.get("origin") == "user":
            link.hops.clear()  # a person's change: not a ping-pong
            link.last_direction = None
        # Read again: a newer version than the entry's may be there, and it is the one to write
        # (changes made while this record waited for the budget coalesce into one write).
        row = await self.internal.get(obj, our_id)
        if row is None:
            return
        if row.get("deleted"):
            await self._internal_deleted(link, row)
            return
        link.our_id = our_id
        mapping = self.connection.object_map(obj)
        synced = list(mapping.synced())
        ours = self._canonical(obj, row, synced)
        changed = (
            set(synced)
            if link.base is None
            else {n for n in synced if ours.get(n) != link.base.get(n)}
        )
        decision = await self._decide(link, "out", obj, ours, changed, row)
        action = decision.action
        if (action == "create_only" and link.provider_id is not None) or (
            action == "update_only" and link.provider_id is None
        ):
            action = "skip"
        if action in ("archive", "delete"):
            if link.provider_id is not None and link.state == "live":
                self._hop(link, "out")
                await self._delete_provider(link, obj)
                self._carried(link, "out")
                link.state = "archived"
            link.internal_version = int(row["version"])
            await self.links.save(link)
            return
        if action == "skip" or (not changed and link.state == "live"):
            link.internal_version = int(row["version"])
            await self.links.save(link)
            self._count("rule.skip" if action == "skip" else "echo")
            return
        self._hop(link, "out")
        if link.state == "archived":
            # Back in the rules' favour after an archive: it is written afresh.
            link.state, link.provider_id, link.base, link.written = "live", None, None, {}
        if link.provider_id is None:
            await self._write_provider(link, obj, ours, only=None)
            link.base = dict(ours)
        else:
            merged = merge(
                synced,
                link.base,
                link.base or {},
                ours,
                provider_at=link.provider_at or 0.0,
                internal_at=_epoch(row["updated_at"]),
                owner=self._owner,
            )
            if merged.for_provider:
                await self._write_provider(link, obj, merged.result, only=list(merged.for_provider))
            if merged.for_internal:
                # A field the provider owns, changed here: its owner's value is written back.
                written = await self.internal.patch(
                    obj,
                    our_id,
                    merged.for_internal,
                    origin=self.origin,
                    if_match=int(row["version"]),
                )
                row = written
                self._count("internal.revert")
            link.base = merged.result
        self._carried(link, "out")
        link.internal_version = max(int(row["version"]), link.internal_version or 0)
        await self.links.save(link)

    async def _internal_deleted(self, link: Link, row: dict[str, Any]) -> None:
        obj = self._object(link)
        link.our_id = int(row["id"])
        if link.creating and link.provider_id is None:
            # A create whose answer was lost may have landed: the upsert by our id finds it
            # (or makes it), so that the delete has a record to delete.
            mapping = self.connection.object_map(obj)
            await self._write_provider(
                link, obj, self._canonical(obj, row, list(mapping.synced())), only=None
            )
        if (
            self.connection.deletes.from_internal == "delete"
            and link.provider_id is not None
            and link.state == "live"
        ):
            await self._delete_provider(link, obj)
        await self._record(link, "out", Decision("delete", None), "deleted in our system")
        link.state = "deleted"
        link.internal_version = max(int(row["version"]), link.internal_version or 0)
        await self.links.save(link)

    # -- provider writes ---------------------------------------------------------------------

    async def _write_provider(
        self, link: Link, obj: ObjectName, record: Canonical, *, only: list[str] | None
    ) -> None:
        assert link.our_id is not None or link.provider_id is not None
        mapping = self.connection.object_map(obj)
        where = f"{self.name} {obj} {link.key}"
        create = link.provider_id is None
        fields = to_provider(obj, mapping, record, only=only, create=create, where=where)
        if create:
            if link.creating and link.creating_by != self.instance:
                # Another worker's attempt, or one from before a restart: its request may still
                # be landing (a search now could miss it, and a second record be created), so
                # it is looked for only once a request of then can no longer land.
                wait = (link.creating_at or 0.0) + self.create_horizon - self.clock.now()
                if wait > 0:
                    raise TransientError(
                        f"{where}: an earlier attempt to create it (another worker's, or from "
                        f"before a restart) may still land; looking for it in {wait:.0f} s",
                        retry_after=wait,
                        maybe_applied=True,
                    )
            surely_new = not link.creating
            link.creating = True
            link.creating_by = self.instance
            link.creating_at = self.clock.now()
            await self.links.save(link)  # the intent, before the first try
        else:
            surely_new = False
        write = Write(
            our_id=str(link.our_id) if link.our_id is not None else "",
            fields=fields,
            provider_id=link.provider_id,
            surely_new=surely_new,
        )
        result = await self.writer.upsert(obj, write)
        if not result.ok:
            if result.transient:
                raise TransientError(f"{where}: {result.error}", maybe_applied=True)
            if not create and link.provider_id is not None:
                # Refused as an update: a person may have deleted the record there since the
                # last scan. Then that delete is what happened, not a write to set aside.
                (found,) = await self.connector.get(obj, [link.provider_id])
                if found is None or found.deleted:
                    await self._provider_deleted(link, link.provider_id)
                    raise _Gone()
            raise PermanentError(
                f"{where}: {self.connector.kind} refused the write: {result.error}"
            )
        if result.provider_id is not None:
            link.provider_id = result.provider_id
        link.creating = False
        link.written.update({n: record.get(n) for n in (only or mapping.synced())})
        link.written_at = result.updated_at if result.updated_at is not None else self.clock.now()
        self._count("provider.create" if create else "provider.update")

    async def _delete_provider(self, link: Link, obj: ObjectName) -> None:
        assert link.provider_id is not None
        result = await self.writer.delete(obj, [link.provider_id])
        if not result.ok:
            if result.transient:
                raise TransientError(f"{self.name} delete {link.provider_id}: {result.error}")
            raise PermanentError(f"{self.name} delete {link.provider_id}: {result.error}")
        self._count("provider.delete")

    # -- helpers -----------------------------------------------------------------------------

    def _object(self, link: Link) -> ObjectName:
        obj = link.object
        if obj not in ("contact", "company"):
            raise InvalidInput(f"{self.name}: a key of unknown object {link.key!r}")
        return obj  # type: ignore[return-value]

    def _canonical(self, obj: ObjectName, row: dict[str, Any], synced: list[str]) -> Canonical:
        picked = {name: row.get(name) for name in synced if name in FIELDS[obj]}
        return validate(obj, picked, where=f"our {obj} {row.get('id')}")

    def _owner(self, name: str) -> Any:
        return self.connection.owners.get(name)

    async def _decide(
        self,
        link: Link,
        direction: Direction,
        obj: str,
        record: Canonical,
        changed: set[str],
        row: dict[str, Any] | None,
    ) -> Decision:
        facts = Facts(record, frozenset(changed), archived=bool(row and row.get("archived")))
        decision = self.rules.decide(obj, direction, facts)
        self._count(f"rule.{direction}.{decision.action}")
        await self._record(link, direction, decision, f"changed: {', '.join(sorted(changed))}")
        return decision

    async def _record(self, link: Link, direction: str, decision: Decision, note: str) -> None:
        await self.links.decided(
            link.key,
            {
                "at": self.clock.now(),
                "direction": direction,
                "action": decision.action,
                "rule": decision.rule,
                "note": note,
            },
        )

    async def _clashes(self, link: Link, clashes: list[Any]) -> None:
        for clash in clashes:
            await self.links.clashed(
                link.key,
                self.clock.now(),
                {
                    "record": link.key,
                    "field": clash.field,
                    "provider": clash.provider,
                    "internal": clash.internal,
                    "winner": clash.winner,
                    "why": clash.why,
                },
            )

    def _hop(self, link: Link, direction: str) -> None:
        """Before carrying a change across: quarantine the record if that would be one bounce
        too many lately. A bounce is a carry in the other direction than the record's last one
        (ours → provider, then provider → ours...): a person editing one side often carries
        one way again and again, a ping-pong goes back and forth. Bounces are counted once the
        carry succeeded (``_carried``): a write retried after a failure is one carry."""
        now = self.clock.now()
        recent = [t for t in link.hops if t > now - self.breaker_window]
        bounce = link.last_direction is not None and link.last_direction != direction
        if bounce and len(recent) + 1 > self.breaker_hops:
            self._count("quarantined")
            raise Quarantined(
                f"{self.name} {link.key}: carried back and forth {len(recent) + 1} times within "
                f"{self.breaker_window:g} s with no person's change in our system in between (a "
                "ping-pong: two sides keep rewriting each other's value, e.g. mappings that "
                "normalise a field differently); quarantined until retried"
            )

    def _carried(self, link: Link, direction: str) -> None:
        now = self.clock.now()
        link.hops = [t for t in link.hops if t > now - self.breaker_window]
        if link.last_direction is not None and link.last_direction != direction:
            link.hops.append(now)
        link.last_direction = direction

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
