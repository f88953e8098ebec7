"""Where cases live: SQLite on disk, mirrored in memory, written by one writer at a time.

Every write runs under one lock: it validates against the current state, takes the next logical
timestamp, commits, and only then becomes visible (memory mirror and the highest committed LT
move together, with no ``await`` in between). So a reader never sees an LT that is not committed,
and commit order equals LT order, which is the stand-in's answer to the contract's open question
(section 6), unless the ``lt_late_commit`` fault is on.

Reads are served from the mirror without the lock: they are synchronous, so each one sees one
consistent state, and the ``Logical-Timestamp`` a list answer carries is read in the same step
as its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiosqlite

from intempus.case import StoredCase
from intempus.errors import DELETE_BLOCKED, DELETE_BLOCKED_CHILDREN, ApiError, not_found
from standin_kit.service import WriteHook
from standin_kit.sqlite import open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id           INTEGER PRIMARY KEY,
    lt           INTEGER NOT NULL,
    work_reports INTEGER NOT NULL DEFAULT 0,
    data         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Written:
    """What a write did: the case as committed, the case before (None if created), and whether
    anything was written (False: a create repeating a known ``creation_id``)."""

    case: StoredCase
    before: StoredCase | None
    wrote: bool


"""Called as ``hook(op, case_id)`` right after a write commits, before it is answered."""

Compute = Callable[[Mapping[int, StoredCase]], dict[str, Any]]


class LtClock:
    """Hands out logical timestamps: a global counter, ``step`` apart.

    With the ``lt_late_commit`` fault on, each ordinary write skips one value (a *hole*, as if
    another transaction had taken it and not committed yet); a late write later takes the oldest
    hole that lies at or below a ``Logical-Timestamp`` already served, so it becomes visible
    below a high-water mark a client may have stored.
    """

    def __init__(self, last: int, step: int, seed: int) -> None:
        self.last = last
        self.step = step
        self.served = 0  # highest value sent in a Logical-Timestamp header
        self._holes: list[int] = []
        self._rng = random.Random(seed)

    def next(self, late_rate: float, floor: int = 0) -> tuple[int, bool]:
        """The LT for the next write and whether it is a late one (the counter is not moved
        until ``commit``). ``floor`` is the case's current LT: a late write never takes a value
        below it, so one case's LT still only grows."""
        hole_ready = late_rate > 0 and self._holes and floor < self._holes[0] <= self.served
        if hole_ready and (late_rate >= 1.0 or self._rng.random() < late_rate):
            return self._holes[0], True
        gap = 2 if late_rate > 0 else 1
        return self.last + gap * self.step, False

    def commit(self, lt: int, late: bool, late_rate: float) -> None:
        if late:
            self._holes.pop(0)
            return
        if late_rate > 0:
            self._holes.append(lt - self.step)
        self.last = lt


class CaseStore:
    """Cases on disk and in memory. Use ``async with CaseStore.open(...) as store``."""

    def __init__(
        self, db: aiosqlite.Connection, lt: LtClock, next_id: int, hooks: list[WriteHook]
    ) -> None:
        self._db = db
        self.lt = lt
        self.next_id = next_id
        self.cases: dict[int, StoredCase] = {}
        self.by_creation_id: dict[str, int] = {}
        self.children: Counter[int] = Counter()  # parent id -> number of child cases
        self._hooks = hooks
        self._lock = asyncio.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, path: str, *, lt_start: int, lt_step: int, id_start: int, seed: int,
        hooks: list[WriteHook],
    ) -> AsyncIterator[CaseStore]:  # fmt: skip
        async with open_db(path, SCHEMA) as db:
            rows = await db.execute_fetchall("SELECT key, value FROM meta")
            meta: dict[str, int] = {str(k): int(v) for k, v in rows}
            lt = LtClock(int(meta.get("last_lt", lt_start - lt_step)), lt_step, seed)
            store = cls(db, lt, int(meta.get("next_id", id_start)), hooks)
            rows = await db.execute_fetchall("SELECT id, lt, work_reports, data FROM cases")
            for row_id, row_lt, work_reports, data in rows:
                case = StoredCase(int(row_id), int(row_lt), json.loads(data), int(work_reports))
                store._remember(case)
            yield store

    @property
    def header(self) -> int:
        """The highest committed logical timestamp."""
        return self.lt.last

    def served(self) -> int:
        """The header value to send now; remembered for the late-commit fault."""
        self.lt.served = max(self.lt.served, self.lt.last)
        return self.lt.last

    def sorted_cases(self) -> list[StoredCase]:
        return sorted(self.cases.values(), key=lambda c: c.id)

    def _remember(self, case: StoredCase) -> None:
        self.cases[case.id] = case
        if case.fields.get("parent") is not None:
            self.children[case.fields["parent"]] += 1
        creation_id = case.fields.get("creation_id")
        if creation_id is not None:
            self.by_creation_id[creation_id] = case.id

    def _forget(self, case_id: int) -> None:
        case = self.cases.pop(case_id)
        parent = case.fields.get("parent")
        if parent is not None:
            self.children[parent] -= 1
            if self.children[parent] <= 0:
                del self.children[parent]
        creation_id = case.fields.get("creation_id")
        if creation_id is not None and self.by_creation_id.get(creation_id) == case_id:
            del self.by_creation_id[creation_id]

    async def _commit(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                await self._db.execute(sql, params)
            await self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await self._db.execute("ROLLBACK")
            raise

    def _notify(self, op: str, case_id: int) -> None:
        for hook in list(self._hooks):
            hook(op, case_id)

    @staticmethod
    def _meta(key: str, value: int) -> tuple[str, tuple[Any, ...]]:
        return ("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    async def write(
        self,
        op: str,
        case_id: int | None,
        compute: Compute,
        *,
        today: date,
        late_rate: float,
        creation_id: str | None = None,
    ) -> Written:
        """Create (``case_id`` None, or a new id for PUT-creates) or update one case.

        ``compute(cases)`` returns the new stored fields or raises ``ApiError``; it runs under
        the lock, so its checks (parent exists, number unique) see the state it writes over.
        A create whose ``creation_id`` is known returns the existing case and writes nothing.
        """
        async with self._lock:
            if creation_id is not None and creation_id in self.by_creation_id:
                existing = self.cases[self.by_creation_id[creation_id]]
                return Written(existing, None, wrote=False)
            before = None if case_id is None else self.cases.get(case_id)
            values = compute(self.cases)
            values["creation_date"] = today.isoformat()
            lt, late = self.lt.next(late_rate, 0 if before is None else before.lt)
            new_id = self.next_id if case_id is None else case_id
            case = StoredCase(new_id, lt, values, 0 if before is None else before.work_reports)
            statements = [
                (
                    "INSERT OR REPLACE INTO cases (id, lt, work_reports, data) VALUES (?,?,?,?)",
                    (case.id, case.lt, case.work_reports, json.dumps(values)),
                ),
            ]
            next_id = max(self.next_id, new_id + 1)
            statements.append(self._meta("next_id", next_id))
            if not late:
                statements.append(self._meta("last_lt", lt))
            await self._commit(statements)
            # Visible only now, all in one synchronous step.
            self.next_id = next_id
            if before is not None:
                self._forget(before.id)
            self._remember(case)
            self.lt.commit(lt, late, late_rate)
            self._notify(op, case.id)
            return Written(case, before, wrote=True)

    async def seed(self, rows: list[dict[str, Any]], *, today: date) -> None:
        """Create the sample cases (already hydrated) in one transaction: start-up stays quick
        with thousands of them."""
        async with self._lock:
            cases: list[StoredCase] = []
            next_id = self.next_id
            lt = self.lt.last
            for values in rows:
                lt += self.lt.step
                fields = {**values, "creation_date": today.isoformat()}
                cases.append(StoredCase(next_id, lt, fields))
                next_id += 1
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                await self._db.executemany(
                    "INSERT INTO cases (id, lt, work_reports, data) VALUES (?, ?, 0, ?)",
                    [(c.id, c.lt, json.dumps(c.fields)) for c in cases],
                )
                for key, value in (("next_id", next_id), ("last_lt", lt)):
                    await self._db.execute(*self._meta(key, value))
                await self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._db.execute("ROLLBACK")
                raise
            self.next_id = next_id
            self.lt.last = lt
            for case in cases:
                self._remember(case)
                self._notify("SEED", case.id)

    async def delete(
        self, op: str, case_id: int, *, ignore_work_reports: bool, ignore_children: bool = False
    ) -> None:
        """Hard delete. Raises 404 (missing) or 409 (work reports or child cases block it)."""
        async with self._lock:
            case = self.cases.get(case_id)
            if case is None:
                raise not_found()
            if case.work_reports > 0 and not ignore_work_reports:
                raise ApiError(409, {"error": DELETE_BLOCKED})
            if self.children.get(case_id, 0) > 0 and not ignore_children:
                raise ApiError(409, {"error": DELETE_BLOCKED_CHILDREN})
            await self._commit([("DELETE FROM cases WHERE id = ?", (case_id,))])
            self._forget(case_id)
            self._notify(op, case_id)

    async def set_work_reports(self, case_id: int, count: int) -> StoredCase:
        async with self._lock:
            case = self.cases.get(case_id)
            if case is None:
                raise not_found()
            await self._commit(
                [("UPDATE cases SET work_reports = ? WHERE id = ?", (count, case_id))]
            )
            case.work_reports = count
            return case
