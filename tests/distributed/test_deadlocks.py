"""Several workers write the same rows (counters, maps) in their own orders: PostgreSQL then
breaks a deadlock by failing one transaction. A write must survive being that one (the bench saw
a worker stop on it), so the state's writer runs a batch again when PostgreSQL says deadlock."""

from __future__ import annotations

import asyncio

import asyncpg

from integration.core.state.postgres import PostgresStore
from tests.helpers.stores import postgres_schema, postgres_url


async def test_a_write_that_postgresql_picks_to_break_a_deadlock_is_run_again_and_commits() -> None:
    async with postgres_schema() as schema:
        store = PostgresStore(postgres_url(), schema=schema)
        await store.open()
        other = await asyncpg.connect(postgres_url(), server_settings={"search_path": schema})
        try:
            await store.map_put("n", "a", "0")
            await store.map_put("n", "b", "0")
            other_has_a = [asyncio.Event(), asyncio.Event()]
            tries = 0

            async def b_then_a(conn: asyncpg.Connection) -> None:
                nonlocal tries
                tries += 1
                await conn.execute("UPDATE maps SET value = 'store' WHERE key = 'b'")
                if tries <= len(other_has_a):
                    await other_has_a[tries - 1].wait()
                # Waits for the other transaction, which then waits for this one: a cycle.
                await conn.execute("UPDATE maps SET value = 'store' WHERE key = 'a'")

            async def a_then_b(has_a: asyncio.Event) -> None:
                async with other.transaction():
                    await other.execute("UPDATE maps SET value = 'other' WHERE key = 'a'")
                    has_a.set()
                    await asyncio.sleep(0.3)  # the store's transaction is waiting by now
                    await other.execute("UPDATE maps SET value = 'other' WHERE key = 'b'")

            writer = asyncio.create_task(store.write(b_then_a))
            async with asyncio.timeout(30):
                # Twice in a row the store's transaction waited first, and PostgreSQL fails it:
                # busy workers meet the same rows again at once.
                for has_a in other_has_a:
                    await a_then_b(has_a)
                await writer

            assert tries == 3
            assert await store.map_get("n", "a") == "store"
            assert await store.map_get("n", "b") == "store"
        finally:
            await other.close()
            await store.close()
