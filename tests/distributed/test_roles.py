"""Who does what among several workers: the partition split, claims and their fences, the
poller role and its fence, and a new owner reading from the stored offset (never from where the
previous owner's reading stopped). Real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import asyncpg
import pytest

from integration.core.clock import SystemClock
from integration.core.distributed.coordinator import Coordinator, DistributedSettings
from integration.core.distributed.jetstream import JetStreamInbox
from integration.core.distributed.partitions import partition_of
from integration.core.distributed.roles import Membership, PollerLock
from integration.core.state.postgres import FenceLost, PostgresStore
from integration.core.state.records import NewEntry, StateError
from integration.core.stats import Stats
from tests.distributed.conftest import fresh_sync
from tests.helpers.nats import nats_url
from tests.helpers.stores import cut_advisory_lock, postgres_schema, postgres_url

SYNC = "bigchat"


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with postgres_schema() as schema:
        opened = PostgresStore(postgres_url(), schema=schema)
        await opened.open()
        try:
            yield opened
        finally:
            await opened.close()


async def age_heartbeat(store: PostgresStore, worker: str, seconds: float) -> None:
    """Make ``worker`` look silent for ``seconds`` (as a killed process would be)."""

    async def op(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE workers SET heartbeat_at = heartbeat_at - $2 WHERE worker = $1",
            worker,
            seconds,
        )

    await store.write(op)


def test_a_key_has_one_partition_for_good_and_shares_it_with_its_order() -> None:
    assert partition_of("cases", "i42", 16) == partition_of("cases", "i42", 16)
    spread = {partition_of("bigchat", str(k), 8) for k in range(200)}
    assert spread == set(range(8))


async def test_a_live_owners_partition_is_not_claimed_a_silent_ones_is_with_a_new_epoch(
    store: PostgresStore,
) -> None:
    first = Membership(store, SYNC, "w1", 4, ttl=2.0)
    second = Membership(store, SYNC, "w2", 4, ttl=2.0)
    await first.join()
    await second.join()
    claim = await first.claim(0)
    assert claim is not None and claim.epoch == 1

    assert await second.claim(0) is None
    await age_heartbeat(store, "w1", 10)
    taken = await second.claim(0)

    assert taken is not None and taken.epoch == 2


async def test_an_owner_whose_claim_was_taken_over_stores_nothing_more(
    store: PostgresStore,
) -> None:
    store.partition_by(4, {"bigchat": "bigchat"})
    first = Membership(store, SYNC, "w1", 4, ttl=2.0)
    second = Membership(store, SYNC, "w2", 4, ttl=2.0)
    await first.join()
    await second.join()
    old = await first.claim(1)
    assert old is not None
    await age_heartbeat(store, "w1", 10)
    assert await second.claim(1) is not None
    entry = NewEntry(key="7", kind="MESSAGE", fingerprint="f7", payload="{}")

    with pytest.raises(FenceLost):
        await store.store_owned(SYNC, 1, old.epoch, 10, {"bigchat": [entry]})

    assert await store.pending("bigchat", 0, 10) == []
    [row] = [r for r in await first.table() if r.part == 1]
    assert row.offset == 0 and row.owner == "w2"


async def test_a_poller_that_lost_its_role_cannot_move_the_cursor(store: PostgresStore) -> None:
    sync = fresh_sync()  # advisory locks are per database, and the tests share one
    old = PollerLock(store.url, sync, "w1", store.schema)
    new = PollerLock(store.url, sync, "w2", store.schema)
    epoch = await old.try_acquire()
    assert epoch == 1
    assert await new.try_acquire() is None  # held
    store.fence_cursors(old.fence, epoch)
    await store.set_cursor("bigchat", 100.0)

    await old.release()  # its connection gone: the lock with it
    assert await new.try_acquire() == 2

    with pytest.raises(FenceLost):
        await store.set_cursor("bigchat", 200.0)
    with pytest.raises(FenceLost):
        await store.store_page("bigchat", [], cursor=("bigchat", 200.0))
    assert await store.get_cursor("bigchat") == 100.0
    await new.release()


async def test_losing_the_poller_locks_connection_is_an_error_that_stops_the_process(
    store: PostgresStore,
) -> None:
    lock = PollerLock(store.url, fresh_sync(), "w1", store.schema)
    assert await lock.try_acquire() == 1
    await lock.check()
    await cut_advisory_lock(store.url, lock.key)

    with pytest.raises(StateError, match="lost the connection holding the poller role"):
        await lock.check()
    await lock.release()


class Hooks:
    """The engine's side of a coordinator, for a coordinator run on its own."""

    def __init__(self) -> None:
        self.stats = Stats()
        self.clock = SystemClock()
        self.grew = asyncio.Event()

    def partition_busy(self, part: int) -> bool:
        return False

    async def flush_done(self) -> None:
        return None

    def inbox_grew(self, *, rescan: bool) -> None:
        self.grew.set()

    def forget_cached(self) -> None:
        return None


class Frozen(PostgresStore):
    """A worker frozen between reading a batch from JetStream and storing it (a process about to
    be killed there): its store never answers ``store_owned``."""

    async def store_owned(self, *args: object, **kwargs: object) -> int:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_new_owner_reads_from_the_stored_offset_not_where_the_old_owner_stopped(
    store: PostgresStore,
) -> None:
    name = fresh_sync()
    inbox = JetStreamInbox(nats_url(), name, 1)
    settings = DistributedSettings(partitions=1, heartbeat=0.2, worker_ttl=1.0)
    entries = [
        NewEntry(key=str(k % 5), kind="MESSAGE", fingerprint=f"f{k}", payload="{}")
        for k in range(40)
    ]
    frozen_store = Frozen(store.url, schema=store.schema)
    await frozen_store.open()
    old = Coordinator(frozen_store, inbox, SYNC, "old", {}, settings)
    new_inbox = JetStreamInbox(nats_url(), name, 1)
    new = Coordinator(store, new_inbox, SYNC, "new", {}, settings)
    try:
        await old.start(Hooks())
        await inbox.publish("bigchat", "bigchat", entries)
        await old._rebalance()  # claims the partition; its reader fetches, then hangs storing
        await asyncio.sleep(0.5)
        await age_heartbeat(store, "old", 10)  # and it goes silent

        hooks = Hooks()
        await new.start(hooks)
        await new._rebalance()
        try:
            async with asyncio.timeout(10):
                while len(await store.pending("bigchat", 0, 100)) < len(entries):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass  # the assertion below says what is missing

        stored = await store.pending("bigchat", 0, 100)
        assert [e.fingerprint for e in stored] == [e.fingerprint for e in entries]
    finally:
        async with asyncio.timeout(20):
            for coordinator in (old, new):
                await coordinator._cancel_consumers(list(coordinator._owned))
            await frozen_store.close()
            js = await new_inbox._context()
            await js.delete_stream(inbox.stream)
            await inbox.close()
            await new_inbox.close()


async def test_entries_pending_from_a_single_worker_state_get_their_partitions_when_several_join(
    store: PostgresStore,
) -> None:
    entries = [
        NewEntry(key=str(k), kind="MESSAGE", fingerprint=f"f{k}", payload="{}") for k in range(12)
    ]
    await store.store_page("bigchat", entries)  # stored by one worker: no partitions yet
    store.partition_by(3, {"bigchat": "bigchat"})

    assert await store.assign_missing_partitions() == 12

    for part in range(3):
        mine = await store.pending("bigchat", 0, 100, partitions=[part])
        assert {e.key for e in mine} == {
            str(k) for k in range(12) if partition_of("bigchat", str(k), 3) == part
        }


async def settle(coordinators: list[Coordinator], rounds: int = 4) -> dict[str, set[int]]:
    """A few rebalance rounds of every coordinator in turn; who owns what, as the table says."""
    for _ in range(rounds):
        for coordinator in coordinators:
            await coordinator.membership.heartbeat()
            await coordinator._rebalance()
    owners: dict[str, set[int]] = {c.worker: set() for c in coordinators}
    for row in await coordinators[0].membership.table():
        assert row.owner in owners, f"partition {row.part}: owner {row.owner}"
        owners[row.owner].add(row.part)
    for coordinator in coordinators:
        assert set(coordinator.feeding()) == owners[coordinator.worker]
    return owners


async def test_workers_coming_and_going_own_each_partition_once_within_their_share_keeping_theirs(
    store: PostgresStore,
) -> None:
    name = fresh_sync()
    settings = DistributedSettings(partitions=16, heartbeat=0.2, worker_ttl=1.0)
    coordinators = [
        Coordinator(store, JetStreamInbox(nats_url(), name, 16), SYNC, f"w{i}", {}, settings)
        for i in range(3)
    ]
    try:
        first, second, third = coordinators
        await first.start(Hooks())
        assert {p for o in (await settle([first])).values() for p in o} == set(range(16))

        await second.start(Hooks())
        owners = await settle([first, second])
        assert sorted(len(o) for o in owners.values()) == [8, 8]

        await third.start(Hooks())
        owners = await settle([first, second, third])
        assert sum(len(o) for o in owners.values()) == 16
        assert max(len(o) for o in owners.values()) <= math.ceil(16 / 3)

        # The first dies: the other two take its partitions and keep their own.
        kept = {w: set(owners[w]) for w in ("w1", "w2")}
        await first._cancel_consumers(list(first._owned))
        await age_heartbeat(store, "w0", 10)
        await asyncio.sleep(0.1)
        owners = await settle([second, third])
        assert owners["w1"] | owners["w2"] == set(range(16))
        assert max(len(owners[w]) for w in ("w1", "w2")) <= 8
        assert all(kept[w] <= owners[w] for w in ("w1", "w2"))
    finally:
        for coordinator in coordinators:
            await coordinator._cancel_consumers(list(coordinator._owned))
        js = await coordinators[0].inbox._context()
        await js.delete_stream(coordinators[0].inbox.stream)
        for coordinator in coordinators:
            await coordinator.inbox.close()


def test_status_of_a_postgresql_state_needs_nats_only_when_an_inbox_is_named() -> None:
    import subprocess
    import sys

    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, integration.core.commands, integration.core.distributed.status;"
            " print('nats' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"


async def test_two_states_in_one_database_have_a_poller_each(store: PostgresStore) -> None:
    async with postgres_schema() as schema:
        first = PollerLock(store.url, SYNC, "w1", store.schema)
        second = PollerLock(store.url, SYNC, "w2", schema)
        try:
            assert await first.try_acquire() is not None
            other = PostgresStore(store.url, schema=schema)
            await other.open()  # its schema, with its own fences table
            await other.close()
            assert await second.try_acquire() is not None
        finally:
            await first.release()
            await second.release()


async def test_a_poller_whose_lock_is_lost_stops_even_if_its_polling_swallows_a_cancellation(
    store: PostgresStore,
) -> None:
    # Python 3.11 can lose a cancellation that arrives as an ``asyncio.timeout`` expires (the
    # HTTP client then sees a timeout and retries): the polling goes on. The role must end all
    # the same, with the error that stops the process.
    name = fresh_sync()
    coordinator = Coordinator(
        store,
        JetStreamInbox(nats_url(), name, 1),
        name,
        "w1",
        {},
        DistributedSettings(partitions=1, heartbeat=0.2, worker_ttl=1.0),
    )
    coordinator._hooks = Hooks()
    swallowed = 0
    polling = asyncio.Event()

    async def lead(stopping: asyncio.Event) -> None:
        nonlocal swallowed
        polling.set()
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise

    role = asyncio.create_task(coordinator.run_poller_role(asyncio.Event(), lead))
    try:
        async with asyncio.timeout(10):
            await polling.wait()
        await cut_advisory_lock(store.url, coordinator.poller.key)
        with pytest.raises(StateError, match="lost the connection holding the poller role"):
            async with asyncio.timeout(10):
                await role
        assert swallowed >= 1
    finally:
        role.cancel()
        await asyncio.gather(role, return_exceptions=True)
        await coordinator.poller.release()
