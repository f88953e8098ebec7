"""The state store, SQLite and PostgreSQL alike: atomic pages, de-duplication, dead letters,
durability; and what each does with a state it did not write (a newer or older schema)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from integration.core.state import StateStore
from integration.core.store import NewEntry, Rejected, SQLiteStore, StateError
from tests.helpers.stores import BACKENDS, opened_store, postgres_schema, rows_elsewhere, same_state


def entry(n: int, key: str = "1") -> NewEntry:
    return NewEntry(
        key=key, kind="MESSAGE", fingerprint=f"fp{n}", payload=f'{{"n":{n}}}', occurred_at=float(n)
    )


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with opened_store(request.param, tmp_path) as s:
        yield s


async def test_a_page_is_stored_and_its_duplicates_ignored(store: StateStore) -> None:
    first = await store.store_page("src", [entry(1), entry(2)])
    second = await store.store_page("src", [entry(2), entry(3), entry(3)])

    assert (first.new, first.duplicate) == (2, 0)
    assert (second.new, second.duplicate) == (1, 2)
    assert [e.fingerprint for e in await store.pending("src", 0, 10)] == ["fp1", "fp2", "fp3"]


async def test_the_cursor_advances_in_the_same_transaction_as_the_last_page(
    store: StateStore,
) -> None:
    await store.store_page("src", [entry(1)], cursor=("src", 500.0))

    assert await store.get_cursor("src") == 500.0


async def test_a_failed_page_leaves_neither_its_entries_nor_the_cursor(store: StateStore) -> None:
    await store.set_cursor("src", 100.0)
    # A value the database cannot store fails the statement part-way through the page.
    bad = NewEntry(key="1", kind="MESSAGE", fingerprint="fpX", payload=object(), occurred_at=1)  # type: ignore[arg-type]

    with pytest.raises(StateError):
        await store.store_page("src", [entry(1), bad], cursor=("src", 500.0))

    assert await store.get_cursor("src") == 100.0
    assert await store.pending("src", 0, 10) == []


async def test_one_failing_write_does_not_fail_others_committed_with_it(store: StateStore) -> None:
    import asyncio

    broken: Any
    if isinstance(store, SQLiteStore):

        def broken_sqlite(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO no_such_table VALUES (1)")

        broken, cause = store.write(broken_sqlite), sqlite3.OperationalError
    else:
        import asyncpg

        async def broken_postgres(conn: asyncpg.Connection) -> None:
            await conn.execute("INSERT INTO no_such_table VALUES (1)")

        broken, cause = store.write(broken_postgres), asyncpg.UndefinedTableError  # type: ignore[attr-defined]

    results = await asyncio.gather(
        store.store_page("src", [entry(1)]),
        broken,
        store.map_put("m", "k", "v"),
        return_exceptions=True,
    )

    assert isinstance(results[1], StateError)
    assert isinstance(results[1].__cause__, cause)
    assert await store.map_get("m", "k") == "v"
    assert len(await store.pending("src", 0, 10)) == 1


async def test_rejects_are_dead_lettered_at_once_and_never_pending(store: StateStore) -> None:
    await store.store_page(
        "src", [], [Rejected(key="9", fingerprint="bad1", payload="{}", reason="nope")]
    )

    letters = await store.dead_letters("src")
    assert [(d.key, d.reason, d.blocking) for d in letters] == [("9", "nope", False)]
    assert await store.pending("src", 0, 10) == []


async def test_a_blocking_dead_letter_holds_back_its_keys_later_entries_only(
    store: StateStore,
) -> None:
    await store.store_page("src", [entry(1, "a"), entry(2, "a"), entry(3, "b")])
    first = (await store.pending("src", 0, 10))[0]

    await store.dead_letter(first, "refused", blocking=True)

    assert [e.fingerprint for e in await store.pending("src", 0, 10)] == ["fp3"]


async def test_retrying_a_dead_letter_puts_it_back_in_its_place(store: StateStore) -> None:
    await store.store_page("src", [entry(1, "a"), entry(2, "a")])
    first = (await store.pending("src", 0, 10))[0]
    letter = await store.dead_letter(first, "refused", blocking=True)

    assert await store.retry_dead_letters([letter]) == 1

    assert [e.fingerprint for e in await store.pending("src", 0, 10)] == ["fp1", "fp2"]
    assert await store.dead_letters("src") == []


async def test_done_entries_are_no_longer_pending(store: StateStore) -> None:
    await store.store_page("src", [entry(1), entry(2)])
    seqs = [e.seq for e in await store.pending("src", 0, 10)]

    await store.mark_done(seqs[:1])

    assert [e.seq for e in await store.pending("src", 0, 10)] == seqs[1:]
    assert (await store.status("src")).inbox == {"pending": 1, "done": 1, "dead": 0}


async def test_state_survives_closing_and_reopening(store: StateStore) -> None:
    await store.store_page("src", [entry(1)], cursor=("src", 42.0))
    await store.ledger_put("message", "fp1", "intent")
    await store.close()

    second = same_state(store)
    await second.open()
    try:
        assert await second.get_cursor("src") == 42.0
        assert await second.ledger_get("message", "fp1") == "intent"
        assert len(await second.pending("src", 0, 10)) == 1
    finally:
        await second.close()


async def test_a_committed_write_is_in_the_file_before_the_call_returns(store: StateStore) -> None:
    await store.ledger_put("message", "fp1", "intent")

    # Another connection (as a restarted process would) sees it at once.
    rows = await rows_elsewhere(store, "SELECT state FROM ledger WHERE key = 'fp1'")
    assert rows == [("intent",)]


async def test_a_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")

    with pytest.raises(StateError, match="newer"):
        await SQLiteStore(path).open()


async def test_an_intent_recorded_on_an_entry_comes_back_with_it(store: StateStore) -> None:
    await store.store_page("src", [entry(1), entry(2)])
    first, _ = await store.pending("src", 0, 10)

    await store.mark_intent(first.seq)

    again = await store.pending("src", 0, 10)
    assert [e.intent for e in again] == [True, False]
    await store.mark_intent(first.seq, started=False)
    assert not (await store.pending("src", 0, 10))[0].intent


async def test_a_state_file_of_version_1_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        from integration.core.store import _MIGRATIONS

        db.executescript(_MIGRATIONS[0] + "PRAGMA user_version = 1;")
        db.execute(
            "INSERT INTO inbox (source, key, kind, fingerprint, payload, state, received_at)"
            " VALUES ('src', '1', 'END', 'fp', '{}', 'pending', 0)"
        )
    store = SQLiteStore(path)
    await store.open()
    try:
        [kept] = await store.pending("src", 0, 10)
        assert (kept.fingerprint, kept.intent) == ("fp", False)
    finally:
        await store.close()


async def test_a_postgres_state_of_a_newer_version_is_refused() -> None:
    import asyncpg

    from integration.core.state.postgres import PostgresStore
    from tests.helpers.stores import POSTGRES_URL

    async with postgres_schema() as schema:
        first = PostgresStore(POSTGRES_URL, schema=schema)
        await first.open()
        await first.close()
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'UPDATE "{schema}".schema_version SET version = 99')
        finally:
            await conn.close()

        with pytest.raises(StateError, match="newer"):
            await PostgresStore(POSTGRES_URL, schema=schema).open()


async def test_an_unreachable_postgres_is_one_line_naming_it_without_its_password() -> None:
    pytest.importorskip("asyncpg")
    from integration.core.state.postgres import PostgresStore

    # Port 1: nothing listens there.
    store = PostgresStore("postgresql://worker:s3cret@127.0.0.1:1/state")

    with pytest.raises(StateError) as caught:
        await store.open()

    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert message.startswith("postgresql://worker:***@127.0.0.1:1/state")


async def test_two_postgres_stores_opening_one_new_schema_at_once_both_work() -> None:
    import asyncio

    from integration.core.state.postgres import PostgresStore
    from tests.helpers.stores import POSTGRES_URL

    async with postgres_schema() as schema:
        stores = [PostgresStore(POSTGRES_URL, schema=schema) for _ in range(3)]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            await stores[0].map_put("m", "k", "v")
            assert [await s.map_get("m", "k") for s in stores] == ["v"] * 3
        finally:
            await asyncio.gather(*(s.close() for s in stores))
