"""The record store: per-object tables of records with versions, modification times, soft and
hard deletes, and a change log that feeds the webhook emitter.

Fields are kept in the provider's own names and types (HubSpot property strings, Salesforce field
names, Pipedrive v2 fields); the store does not interpret them. Every change names its ``Origin``
(our integration through the API, or a CRM user through ``/_standin/``) so that each provider can
render its own loop marker (HubSpot ``changeSource``, Salesforce ``changeOrigin``, Pipedrive
``change_source``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from crm_providers.core.clock import Clock


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"  # soft: archived / recycle bin / marked deleted
    UNDELETE = "undelete"
    PURGE = "purge"  # hard: gone from the table


@dataclass(frozen=True)
class Origin:
    """Who made a change. ``kind`` is ``integration`` (an API client) or ``user`` (the CRM's UI).

    ``actor`` is the integration's marker (HubSpot app id, Salesforce ``client=`` value, Pipedrive
    user id) or the user's id; empty when the writer sent none.
    """

    kind: str
    actor: str = ""

    @property
    def is_user(self) -> bool:
        return self.kind == "user"


@dataclass
class Record:
    """One record as the store keeps it."""

    object: str
    id: str
    fields: dict[str, Any]
    version: int
    created_at: float
    updated_at: float
    deleted: bool = False
    deleted_at: float | None = None

    def copy(self) -> Record:
        return copy.deepcopy(self)


@dataclass(frozen=True)
class Change:
    """One entry of the change log. ``changed`` holds ``{field: [old, new]}`` for the fields that
    changed (all set fields on a create; empty on deletes)."""

    seq: int
    at: float
    object: str
    record_id: str
    kind: ChangeKind
    changed: dict[str, list[Any]]
    origin: Origin
    version: int
    transaction: str = ""

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        return out


class NotFound(Exception):
    """No such record (or it is deleted, where deleted ones do not count)."""


Listener = Callable[[Change, Record], None]


@dataclass
class Table:
    records: dict[str, Record] = field(default_factory=dict)


CHANGE_LOG_LIMIT = 100_000
"""Most changes kept in memory; the sequence numbers keep growing."""


class RecordStore:
    """In-memory tables plus a change log. Not thread-safe: one event loop owns it."""

    def __init__(self, objects: Iterable[str], clock: Clock) -> None:
        self.clock = clock
        self.tables: dict[str, Table] = {name: Table() for name in objects}
        self.purged: list[Record] = []
        self.changes: list[Change] = []
        self.seq = 0
        self.transactions = 0
        self._listeners: list[Listener] = []

    # -- reading -------------------------------------------------------------------------------

    def table(self, obj: str) -> dict[str, Record]:
        return self.tables[obj].records

    def get(self, obj: str, record_id: str, *, include_deleted: bool = False) -> Record:
        record = self.table(obj).get(record_id)
        if record is None or (record.deleted and not include_deleted):
            raise NotFound(f"{obj} {record_id}")
        return record

    def find(self, obj: str, *, include_deleted: bool = False) -> Iterator[Record]:
        for record in self.table(obj).values():
            if include_deleted or not record.deleted:
                yield record

    def matching(self, obj: str, name: str, value: Any) -> list[Record]:
        """Live records whose field ``name`` equals ``value`` (unique checks, upserts, search)."""
        return [r for r in self.find(obj) if r.fields.get(name) == value]

    # -- writing -------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """``listener(change, record_after)`` is called after every committed change."""
        self._listeners.append(listener)

    def new_transaction(self) -> str:
        """A key grouping the changes of one request (Salesforce ``transactionKey``)."""
        self.transactions += 1
        return f"tx-{self.transactions:08d}"

    def create(
        self, obj: str, record_id: str, fields: dict[str, Any], origin: Origin, tx: str = ""
    ) -> Record:
        now = self.clock.now()
        record = Record(obj, record_id, dict(fields), 1, now, now)
        self.table(obj)[record_id] = record
        changed = {k: [None, v] for k, v in fields.items() if v is not None}
        self._log(ChangeKind.CREATE, record, changed, origin, tx)
        return record

    def update(
        self, obj: str, record_id: str, fields: dict[str, Any], origin: Origin, tx: str = ""
    ) -> Record:
        """Set ``fields``. A write that changes nothing still bumps the modification time (as the
        providers do) but logs no field change and no event."""
        record = self.get(obj, record_id)
        changed = {
            k: [record.fields.get(k), v] for k, v in fields.items() if record.fields.get(k) != v
        }
        record.fields.update(fields)
        record.updated_at = self.clock.now()
        record.version += 1
        if changed:
            self._log(ChangeKind.UPDATE, record, changed, origin, tx)
        return record

    def delete(self, obj: str, record_id: str, origin: Origin, tx: str = "") -> Record:
        """Soft delete: the record stays, marked deleted, and can be restored."""
        record = self.get(obj, record_id)
        now = self.clock.now()
        record.deleted, record.deleted_at = True, now
        record.updated_at = now
        record.version += 1
        self._log(ChangeKind.DELETE, record, {}, origin, tx)
        return record

    def undelete(self, obj: str, record_id: str, origin: Origin, tx: str = "") -> Record:
        record = self.get(obj, record_id, include_deleted=True)
        if not record.deleted:
            return record
        record.deleted, record.deleted_at = False, None
        record.updated_at = self.clock.now()
        record.version += 1
        self._log(ChangeKind.UNDELETE, record, {}, origin, tx)
        return record

    def purge(self, obj: str, record_id: str, origin: Origin, tx: str = "") -> Record:
        """Hard delete: the record leaves the table (kept in ``purged`` for the truth dump)."""
        record = self.table(obj).pop(record_id, None)
        if record is None:
            raise NotFound(f"{obj} {record_id}")
        was_deleted = record.deleted
        now = self.clock.now()
        record.deleted, record.deleted_at = True, record.deleted_at or now
        record.version += 1
        self.purged.append(record)
        # A purge of a live record is a delete as far as a subscriber can tell.
        self._log(ChangeKind.PURGE, record, {"was_deleted": [was_deleted, True]}, origin, tx)
        return record

    def _log(
        self,
        kind: ChangeKind,
        record: Record,
        changed: dict[str, list[Any]],
        origin: Origin,
        tx: str,
    ) -> None:
        self.seq += 1
        change = Change(
            self.seq,
            record.updated_at,
            record.object,
            record.id,
            kind,
            copy.deepcopy(changed),
            origin,
            record.version,
            tx or self.new_transaction(),
        )
        self.changes.append(change)
        if len(self.changes) > CHANGE_LOG_LIMIT:
            del self.changes[: len(self.changes) - CHANGE_LOG_LIMIT]
        for listener in self._listeners:
            listener(change, record)

    # -- truth and persistence -----------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Every record, deleted and purged ones included, plus counters (the truth dump)."""
        return {
            "objects": {
                obj: [asdict(r) for r in table.records.values()]
                for obj, table in self.tables.items()
            },
            "purged": [asdict(r) for r in self.purged],
            "seq": self.seq,
            "transactions": self.transactions,
        }

    def save(self, path: Path) -> None:
        """Write the tables to ``path`` (atomically: a temporary file, then a rename)."""
        state = self.dump()
        state["changes"] = [c.as_json() for c in self.changes]
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    def load(self, path: Path) -> None:
        """Replace the tables with the ones saved in ``path``."""
        state = json.loads(path.read_text())
        for obj, rows in state["objects"].items():
            if obj in self.tables:
                self.tables[obj].records = {row["id"]: Record(**row) for row in rows}
        self.purged = [Record(**row) for row in state.get("purged", [])]
        self.seq = int(state.get("seq", 0))
        self.transactions = int(state.get("transactions", 0))
        self.changes = [
            Change(
                c["seq"],
                c["at"],
                c["object"],
                c["record_id"],
                ChangeKind(c["kind"]),
                c["changed"],
                Origin(**c["origin"]),
                c["version"],
                c["transaction"],
            )
            for c in state.get("changes", [])
        ]
