"""A connection's share of its provider's limits, taken before every request.

Every dimension a connector declares (``Dimension``) is kept here, and a call is sent only when it
fits all of them, so the provider never has cause to refuse one. Two kinds of window:

- **rolling** (HubSpot's 100 per 10 s, Pipedrive's 20 per 2 s, Salesforce's 24 h): GCRA, one
  number per dimension (the theoretical arrival time). A plain GCRA at the full rate lets a burst
  plus a window of steady sends into one rolling window, up to twice the limit. So the limit
  ``L`` is split: a burst of ``b`` (``burst_share`` of it, at least 1) and a steady rate of
  ``L - b`` per window. Any window of the provider's length then holds fewer than ``L`` units
  (proof in ``docs/crm-sync.md``), at the cost of a steady rate ``b`` short of the limit;
- **fixed** (HubSpot's and Pipedrive's daily budgets, reset at a boundary): a counter per window.

``reserve`` leaves a share of every limit to the account's other integrations: the budget is the
account's, not ours alone. When the provider refuses a call anyway (its own count, other users of
the account), ``refused`` holds that dimension for the wait it gave: its word wins.

The state lives in a ``Ledger``: in this process (``LocalLedger``), or in PostgreSQL
(``postgres_ledger``), shared by every worker of a deployment, on the server's clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...core.clock import Clock, SystemClock
from .base import Dimension

FIXED_MARGIN_S = 2.0
"""A fixed window is taken to reset this long after its boundary: our clock and the provider's
are not the same clock, and a window reset early spends the next day's budget today."""


@dataclass(frozen=True)
class Limit:
    """A dimension as enforced: the units we may use and how."""

    name: str
    units: int
    window: float
    rolling: bool
    offset: float
    interval: float
    """Rolling: seconds per unit at the steady rate."""
    tolerance: float
    """Rolling: how far ahead of now the arrival time may run after a call (burst x interval)."""


def limits(dimensions: Sequence[Dimension], reserve: float, burst_share: float) -> list[Limit]:
    out = []
    for dim in dimensions:
        units = math.floor(dim.limit * (1.0 - reserve))
        if units < 2:
            raise ValueError(
                f"{dim.name}: a limit of {dim.limit} less a reserve of {reserve:.0%} leaves "
                f"{units} unit(s); at least 2 are needed"
            )
        burst = max(1, math.floor(units * burst_share)) if dim.rolling else units
        burst = min(burst, units - 1) if dim.rolling else burst
        steady = units - burst
        interval = dim.window / steady if dim.rolling else 0.0
        out.append(
            Limit(dim.name, units, dim.window, dim.rolling, dim.offset, interval, burst * interval)
        )
    return out


@dataclass
class Cell:
    """One dimension's state: arrival time (rolling) or window and use (fixed), and a hold."""

    tat: float = 0.0
    window: int = -1
    used: int = 0
    hold_until: float = 0.0


def fit(limit: Limit, cell: Cell, cost: int, now: float) -> float:
    """Seconds until ``cost`` units fit (0: they fit now). Pure: nothing is taken."""
    wait = max(0.0, cell.hold_until - now)
    if cost <= 0:
        return wait
    if limit.rolling:
        if cost * limit.interval > limit.tolerance:
            raise ValueError(f"{limit.name}: a call of {cost} units can never fit")
        arrival = max(cell.tat, now) + cost * limit.interval
        over = arrival - now - limit.tolerance
        # Below a microsecond is float noise (now + a tiny wait may be now again): it fits. The
        # bound's own margin (fewer than L units per window, not L) covers it.
        return max(wait, over if over > 1e-6 else 0.0)
    index = math.floor((now + limit.offset - FIXED_MARGIN_S) / limit.window)
    used = cell.used if index == cell.window else 0
    if used + cost > limit.units:
        if cost > limit.units:
            raise ValueError(f"{limit.name}: a call of {cost} units can never fit")
        boundary = (index + 1) * limit.window - limit.offset + FIXED_MARGIN_S
        return max(wait, boundary - now)
    return wait


def spend(limit: Limit, cell: Cell, cost: int, now: float) -> None:
    if cost <= 0:
        return
    if limit.rolling:
        cell.tat = max(cell.tat, now) + cost * limit.interval
        return
    index = math.floor((now + limit.offset - FIXED_MARGIN_S) / limit.window)
    if index != cell.window:
        cell.window, cell.used = index, 0
    cell.used += cost


def remaining(limit: Limit, cell: Cell, now: float) -> int:
    """Units that could go now (a gauge)."""
    if now < cell.hold_until:
        return 0
    if limit.rolling:
        ahead = max(0.0, cell.tat - now)
        return max(0, math.floor((limit.tolerance - ahead) / limit.interval + 1e-9))
    index = math.floor((now + limit.offset - FIXED_MARGIN_S) / limit.window)
    return limit.units - (cell.used if index == cell.window else 0)


class Ledger(Protocol):
    """Where the cells live. ``attempt`` takes the call's units from every dimension at once if
    they all fit (returning 0), or takes nothing and returns the seconds to wait."""

    async def attempt(self, costs: dict[str, int]) -> float: ...

    async def hold(self, dimension: str, seconds: float) -> None: ...

    async def remaining(self) -> dict[str, int]: ...


class LocalLedger:
    """The cells in this process, on the injected clock."""

    def __init__(self, limits: Sequence[Limit], clock: Clock) -> None:
        self.limits = {limit.name: limit for limit in limits}
        self.cells = {limit.name: Cell() for limit in limits}
        self.clock = clock

    async def attempt(self, costs: dict[str, int]) -> float:
        now = self.clock.now()
        wait = max(
            (fit(self.limits[n], self.cells[n], c, now) for n, c in costs.items()), default=0.0
        )
        if wait > 0:
            return wait
        for name, cost in costs.items():
            spend(self.limits[name], self.cells[name], cost, now)
        return 0.0

    async def hold(self, dimension: str, seconds: float) -> None:
        cell = self.cells.get(dimension)
        if cell is not None:
            cell.hold_until = max(cell.hold_until, self.clock.now() + seconds)

    async def remaining(self) -> dict[str, int]:
        now = self.clock.now()
        return {n: remaining(self.limits[n], self.cells[n], now) for n in self.limits}


class ConnectionBudget:
    """``Budget`` for one connection: waits until a call fits, in arrival order per kind of
    call."""

    def __init__(
        self,
        dimensions: Sequence[Dimension],
        ledger: Ledger,
        clock: Clock | None = None,
    ) -> None:
        self.dimensions = {dim.name: dim for dim in dimensions}
        self.ledger = ledger
        self.clock = clock or SystemClock()
        self._locks: dict[str, asyncio.Lock] = {}
        """Calls of one kind wait in arrival order; kinds do not wait for each other (a write
        held behind a search that waits for HubSpot's search limit would wait for nothing)."""
        self.waited = 0.0
        """Seconds spent waiting for the budget (a metric: how often the limit is the brake)."""
        self.refusals = 0
        self._holds: set[asyncio.Task[None]] = set()

    def costs(self, call: str) -> dict[str, int]:
        return {name: dim.cost(call) for name, dim in self.dimensions.items()}

    async def take(self, call: str) -> None:
        costs = self.costs(call)
        async with self._locks.setdefault(call, asyncio.Lock()):
            while (wait := await self.ledger.attempt(costs)) > 0:
                self.waited += wait
                await self.clock.sleep(min(wait, 60.0))

    def refused(self, dimension: str, wait: float) -> None:
        self.refusals += 1
        task = asyncio.get_running_loop().create_task(self.ledger.hold(dimension, wait))
        self._holds.add(task)
        task.add_done_callback(self._holds.discard)

    async def remaining(self) -> dict[str, int]:
        return await self.ledger.remaining()


def local_budget(
    dimensions: Sequence[Dimension],
    *,
    reserve: float = 0.1,
    burst_share: float = 0.1,
    clock: Clock | None = None,
) -> ConnectionBudget:
    clock = clock or SystemClock()
    ledger = LocalLedger(limits(dimensions, reserve, burst_share), clock)
    return ConnectionBudget(dimensions, ledger, clock)


class PostgresLedger:
    """The cells in PostgreSQL (table ``crm_budget`` in the state's schema), shared by every
    worker of a deployment: each attempt locks the connection's rows, reads the server's clock,
    and takes or waits in one transaction, so two workers never spend the same unit. The server's
    clock is the one clock every worker agrees on."""

    def __init__(self, store: Any, connection: str, limits: Sequence[Limit]) -> None:
        self.store = store
        self.connection = connection
        self.limits = {limit.name: limit for limit in limits}
        self.granted: list[float] = []
        """The server's time of each call granted here (what a test of the budget judges)."""

    async def open(self) -> None:
        names = list(self.limits)

        async def op(conn: Any) -> None:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS crm_budget (connection text NOT NULL, dimension text"
                " NOT NULL, tat double precision NOT NULL DEFAULT 0, win bigint NOT NULL DEFAULT"
                " -1, used bigint NOT NULL DEFAULT 0, hold_until double precision NOT NULL"
                " DEFAULT 0, PRIMARY KEY (connection, dimension))"
            )
            await conn.executemany(
                "INSERT INTO crm_budget (connection, dimension) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                [(self.connection, name) for name in names],
            )

        await self.store.write(op)

    async def _cells(self, conn: Any) -> tuple[float, dict[str, Cell]]:
        rows = await conn.fetch(
            "SELECT dimension, tat, win, used, hold_until,"
            " extract(epoch FROM clock_timestamp())::float8 AS now"
            " FROM crm_budget WHERE connection = $1 FOR UPDATE",
            self.connection,
        )
        cells = {r["dimension"]: Cell(r["tat"], r["win"], r["used"], r["hold_until"]) for r in rows}
        return (float(rows[0]["now"]) if rows else 0.0), cells

    async def attempt(self, costs: dict[str, int]) -> float:
        async def op(conn: Any) -> float:
            now, cells = await self._cells(conn)
            wait = max(
                (fit(self.limits[n], cells[n], c, now) for n, c in costs.items() if n in cells),
                default=0.0,
            )
            if wait > 0:
                return wait
            self.granted.append(now)
            for name, cost in costs.items():
                if name in cells and cost > 0:
                    spend(self.limits[name], cells[name], cost, now)
                    cell = cells[name]
                    await conn.execute(
                        "UPDATE crm_budget SET tat = $3, win = $4, used = $5"
                        " WHERE connection = $1 AND dimension = $2",
                        self.connection,
                        name,
                        cell.tat,
                        cell.window,
                        cell.used,
                    )
            return 0.0

        result: float = await self.store.write(op)
        return result

    async def hold(self, dimension: str, seconds: float) -> None:
        async def op(conn: Any) -> None:
            await conn.execute(
                "UPDATE crm_budget SET hold_until = GREATEST(hold_until,"
                " extract(epoch FROM clock_timestamp())::float8 + $3)"
                " WHERE connection = $1 AND dimension = $2",
                self.connection,
                dimension,
                seconds,
            )

        await self.store.write(op)

    async def remaining(self) -> dict[str, int]:
        async def op(conn: Any) -> dict[str, int]:
            now, cells = await self._cells(conn)
            return {n: remaining(self.limits[n], cells[n], now) for n in cells}

        result: dict[str, int] = await self.store.write(op)
        return result


async def shared_budget(
    dimensions: Sequence[Dimension],
    store: Any,
    connection: str,
    *,
    reserve: float = 0.1,
    burst_share: float = 0.1,
    clock: Clock | None = None,
) -> ConnectionBudget:
    """A budget every worker of a deployment shares, through the PostgreSQL state ``store``."""
    ledger = PostgresLedger(store, connection, limits(dimensions, reserve, burst_share))
    await ledger.open()
    return ConnectionBudget(dimensions, ledger, clock)
