"""SQLite against PostgreSQL state: ``store_page`` and ``mark_done`` throughput, in one run.

    python scripts/store_bench.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
                                  [--seconds 1] [--rounds 2] [--page 100]

For each store, on an empty state (SQLite in a temporary folder; PostgreSQL in a fresh schema,
dropped after), in ``--rounds`` rounds that alternate the stores (a busy machine's noise falls on
both alike), the best round's figure kept:

- ``store_page``: pages of ``--page`` new entries, one after another, for ``--seconds``;
- ``mark_done``: those entries marked done ``--page`` at a time, for ``--seconds`` at most;
- ``concurrent``: 32 tasks each storing one-entry pages (as many keys' small writes at once):
  what group commit is for. For PostgreSQL the same again with a transaction per call on the
  pool's connections instead of the group-commit writer, to compare the two.

Entries per second, each figure. Bounded: at most 7 x ``--seconds`` per round (≤ 20 s at the
defaults), 127.0.0.1 only. PostgreSQL unreachable: its rows say so, SQLite's are still measured.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from integration.core.state import NewEntry, SQLiteStore, StateStore

CONCURRENT_TASKS = 32


def entries(start: int, count: int) -> list[NewEntry]:
    return [
        NewEntry(
            key=str(n % 997),
            kind="MESSAGE",
            fingerprint=f"fp{n}",
            payload=f'{{"n":{n},"text":"{"x" * 200}"}}',
            occurred_at=float(n),
        )
        for n in range(start, start + count)
    ]


async def measure(store: StateStore, seconds: float, page: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    stored = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await store.store_page("src", entries(stored, page))
        stored += page
    figures["store_page"] = stored / (time.perf_counter() - started)

    seqs = [e.seq for e in await store.pending("src", 0, stored)]
    done = 0
    started = time.perf_counter()
    while done < len(seqs) and time.perf_counter() - started < seconds:
        await store.mark_done(seqs[done : done + page])
        done += page
    figures["mark_done"] = min(done, len(seqs)) / (time.perf_counter() - started)

    figures["concurrent"] = await concurrent_pages(store, seconds, 10_000_000)
    return figures


async def concurrent_pages(store: StateStore, seconds: float, base: int) -> float:
    """One-entry pages from many tasks at once, for ``seconds``: entries per second."""
    counts = [0] * CONCURRENT_TASKS
    deadline = time.perf_counter() + seconds

    async def task(index: int) -> None:
        n = base + index * 1_000_000
        while time.perf_counter() < deadline:
            await store.store_page("src", entries(n + counts[index], 1))
            counts[index] += 1

    started = time.perf_counter()
    await asyncio.gather(*(task(i) for i in range(CONCURRENT_TASKS)))
    return sum(counts) / (time.perf_counter() - started)


async def sqlite_figures(seconds: float, page: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "state.db")
        await store.open()
        try:
            return await measure(store, seconds, page)
        finally:
            await store.close()


async def postgres_figures(url: str, seconds: float, page: int) -> dict[str, float]:
    import asyncpg

    from integration.core.state.postgres import PostgresStore

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(url, schema=schema)
    await store.open()
    try:
        figures = await measure(store, seconds, page)
        figures["concurrent, a transaction per call"] = await per_call(store, seconds)
    finally:
        await store.close()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
    return figures


async def per_call(store: Any, seconds: float) -> float:
    """The concurrent figure with each write its own transaction on a pool connection (the
    group-commit writer bypassed): what grouping buys."""
    database = store._db
    pool = database._pool

    async def write(op: Callable[[Any], Awaitable[Any]]) -> Any:
        async with pool.acquire() as conn, conn.transaction():
            return await op(conn)

    grouped = database.write
    database.write = write
    try:
        return await concurrent_pages(store, seconds, 50_000_000)
    finally:
        database.write = grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="best of these many")
    parser.add_argument("--page", type=int, default=100, help="entries per page")
    args = parser.parse_args()
    if "127.0.0.1" not in args.url and "localhost" not in args.url:
        parser.error("--url: this benchmark runs against a server on this machine only")

    rows: dict[str, dict[str, float]] = {}

    def keep(store: str, figures: dict[str, float]) -> None:
        best = rows.setdefault(store, {})
        for name, value in figures.items():
            best[name] = max(best.get(name, 0.0), value)

    postgres_problem = None
    for _ in range(args.rounds):
        keep("sqlite", asyncio.run(sqlite_figures(args.seconds, args.page)))
        if postgres_problem is None:
            try:
                keep("postgres", asyncio.run(postgres_figures(args.url, args.seconds, args.page)))
            except Exception as exc:  # unreachable, or asyncpg missing: say so, keep SQLite's
                postgres_problem = f"{type(exc).__name__}: {exc}"
                print(f"postgres: not measured ({postgres_problem})", file=sys.stderr)
    names = list(dict.fromkeys(name for figures in rows.values() for name in figures))
    print(
        f"entries/s, best of {args.rounds} (pages of {args.page}; concurrent: "
        f"{CONCURRENT_TASKS} tasks, 1-entry pages)"
    )
    print(f"{'':<36}" + "".join(f"{store:>12}" for store in rows))
    for name in names:
        cells = "".join(
            f"{figures[name]:>12,.0f}" if name in figures else f"{'-':>12}"
            for figures in rows.values()
        )
        print(f"{name:<36}{cells}")


if __name__ == "__main__":
    main()
