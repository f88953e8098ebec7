"""The BigChat sync end to end on a PostgreSQL state (STATE_URL): BigChat's ground truth ends up
in OurAPI exactly once, as on the SQLite file."""

from __future__ import annotations

from integration.core.state.postgres import PostgresStore
from tests.helpers.stores import postgres_database

from .conftest import Standins, run_until_idle
from .test_sync import assert_mirrored


async def test_a_drain_on_postgresql_state_mirrors_every_conversation_exactly_once(
    standins: Standins,
) -> None:
    async with postgres_database() as url:
        settings = standins.settings(state_url=url)

        engine = await run_until_idle(settings)
        writes_after_first = standins.ourapi_requests()
        await run_until_idle(settings)  # the same history again: all of it de-duplicated
        writes_after_second = standins.ourapi_requests()

        store = PostgresStore(url)
        await store.open()
        try:
            status = await store.status("bigchat")
        finally:
            await store.close()

    assert writes_after_second == writes_after_first
    assert_mirrored(await standins.verify())
    assert status.inbox["pending"] == 0
    assert status.inbox["done"] == engine.stats.applied > 0
    assert not settings.state_db.exists()  # the state is in PostgreSQL, not in the file
