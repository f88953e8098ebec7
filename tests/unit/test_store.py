"""The SQLite state store: atomic pages, de-duplication, dead letters, durability."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from integration.core.store import NewEntry, Rejected, SQLiteStore, StateError


def entry(n: int, key: str = "1") -> NewEntry:
    return NewEntry(
        key=key, kind="MESSAGE", fingerprint=f"fp{n}", payload=f'{{"n":{n}}}', occurred_at=float(n)
    )


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SQLiteStore(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


async def test_a_page_is_stored_and_its_duplicates_ignored(store: SQLiteStore) -> None:
    first = await store.store_page("src", [entry(1), entry(2)])
    second = await store.store_page("src", [entry(2), entry(3), entry(3)])

    assert (first.new, first.duplicate) == (2, 0)
    assert (second.new, second.duplicate) == (1, 2)
    assert [e.fingerprint for e in await store.pending("src", 0, 10)] == ["fp1", "fp2", "fp3"]


async def test_the_cursor_advances_in_the_same_transaction_as_the_last_page(
    store: SQLiteStore,
) -> None:
    await store.store_page("src", [entry(1)], cursor=("src", 500.0))

    assert await store.get_cursor("src") == 500.0


async def test_a_failed_page_leaves_neither_its_entries_nor_the_cursor(store: SQLiteStore) -> None:
    await store.set_cursor("src", 100.0)
    # A value SQLite cannot store fails the statement part-way through the page.
    bad = NewEntry(key="1", kind="MESSAGE", fingerprint="fpX", payload=object(), occurred_at=1)  # type: ignore[arg-type]

    with pytest.raises(sqlite3.Error):
        await store.store_page("src", [entry(1), bad], cursor=("src", 500.0))

    assert await store.get_cursor("src") == 100.0
    assert await store.pending("src", 0, 10) == []


async def test_one_failing_write_does_not_fail_others_committed_with_it(store: SQLiteStore) -> None:
    import asyncio

    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO no_such_table VALUES (1)")

    results = await asyncio.gather(
        store.store_page("src", [entry(1)]),
        store.write(broken),
        store.map_put("m", "k", "v"),
        return_exceptions=True,
    )

    assert isinstance(results[1], sqlite3.OperationalError)
    assert await store.map_get("m", "k") == "v"
    assert len(await store.pending("src", 0, 10)) == 1


async def test_rejects_are_dead_lettered_at_once_and_never_pending(store: SQLiteStore) -> None:
    await store.store_page(
        "src", [], [Rejected(key="9", fingerprint="bad1", payload="{}", reason="nope")]
    )

    letters = await store.dead_letters("src")
    assert [(d.key, d.reason, d.blocking) for d in letters] == [("9", "nope", False)]
    assert await store.pending("src", 0, 10) == []


async def test_a_blocking_dead_letter_holds_back_its_keys_later_entries_only(
    store: SQLiteStore,
) -> None:
    await store.store_page("src", [entry(1, "a"), entry(2, "a"), entry(3, "b")])
    first = (await store.pending("src", 0, 10))[0]

    await store.dead_letter(first, "refused", blocking=True)

    assert [e.fingerprint for e in await store.pending("src", 0, 10)] == ["fp3"]


async def test_retrying_a_dead_letter_puts_it_back_in_its_place(store: SQLiteStore) -> None:
    await store.store_page("src", [entry(1, "a"), entry(2, "a")])
    first = (await store.pending("src", 0, 10))[0]
    letter = await store.dead_letter(first, "refused", blocking=True)

    assert await store.retry_dead_letters([letter]) == 1

    assert [e.fingerprint for e in await store.pending("src", 0, 10)] == ["fp1", "fp2"]
    assert await store.dead_letters("src") == []


async def test_done_entries_are_no_longer_pending(store: SQLiteStore) -> None:
    await store.store_page("src", [entry(1), entry(2)])
    seqs = [e.seq for e in await store.pending("src", 0, 10)]

    await store.mark_done(seqs[:1])

    assert [e.seq for e in await store.pending("src", 0, 10)] == seqs[1:]
    assert (await store.status("src")).inbox == {"pending": 1, "done": 1, "dead": 0}


async def test_state_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SQLiteStore(path)
    await first.open()
    await first.store_page("src", [entry(1)], cursor=("src", 42.0))
    await first.ledger_put("message", "fp1", "intent")
    await first.close()

    second = SQLiteStore(path)
    await second.open()
    try:
        assert await second.get_cursor("src") == 42.0
        assert await second.ledger_get("message", "fp1") == "intent"
        assert len(await second.pending("src", 0, 10)) == 1
    finally:
        await second.close()


async def test_a_committed_write_is_in_the_file_before_the_call_returns(store: SQLiteStore) -> None:
    await store.ledger_put("message", "fp1", "intent")

    # Another connection (as a restarted process would) sees it at once.
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT state FROM ledger WHERE key = 'fp1'").fetchall()
    assert rows == [("intent",)]


async def test_a_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")

    with pytest.raises(StateError, match="newer"):
        await SQLiteStore(path).open()


async def test_an_intent_recorded_on_an_entry_comes_back_with_it(store: SQLiteStore) -> None:
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
