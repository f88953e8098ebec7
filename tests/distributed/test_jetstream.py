"""The JetStream inbox against a real NATS server: where entries land, de-duplication, readers
that start at an offset and never rebind, the lag figures, and the failures it reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import nats.js.errors
import pytest
from nats.js import JetStreamContext, api

from integration.core.distributed.jetstream import (
    Delivered,
    InboxConflict,
    InboxUnavailable,
    JetStreamInbox,
    PartitionReader,
)
from integration.core.distributed.partitions import partition_of
from integration.core.state.records import NewEntry
from tests.distributed.conftest import PARTITIONS, fresh_sync
from tests.helpers.nats import nats_url

KEYSPACE = "chats"


def entries(count: int, *, keys: int = 10, tag: str = "e") -> list[NewEntry]:
    """``count`` entries spread round-robin over ``keys`` keys, each with its own fingerprint."""
    return [
        NewEntry(
            key=f"k{i % keys}",
            kind="message",
            fingerprint=f"{tag}{i}",
            payload=json.dumps({"n": i}),
            occurred_at=1_700_000_000.0 + i,
        )
        for i in range(count)
    ]


def partition(entry: NewEntry) -> int:
    return partition_of(KEYSPACE, entry.key, PARTITIONS)


async def stored(raw: JetStreamContext, stream: str) -> list[tuple[int, str, NewEntry]]:
    """Every message of the stream as (stream seq, subject, entry), read without the inbox."""
    info = await raw.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await raw.get_msg(stream, seq)
        assert message.data is not None and message.subject is not None
        found.append((seq, message.subject, NewEntry(**json.loads(message.data))))
    return found


async def read_all(reader: PartitionReader, *, limit: int = 10_000) -> list[Delivered]:
    """Fetch until a fetch comes back empty (bounded by ``limit`` messages)."""
    got: list[Delivered] = []
    while len(got) < limit:
        batch = await reader.fetch(batch=100, timeout=0.3)
        if not batch:
            break
        got.extend(batch)
    return got


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- publishing ---------------------------------------------------------------------------------


async def test_entries_land_on_their_partitions_subject_in_page_order(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    page = entries(40)
    assert await inbox.publish("bigchat", KEYSPACE, page) == (40, 0)

    messages = await stored(raw, inbox.stream)
    assert [subject for _, subject, _ in messages] == [inbox.subject(partition(e)) for e in page]
    for p in range(PARTITIONS):
        on_subject = [entry for _, subject, entry in messages if subject == inbox.subject(p)]
        assert on_subject == [e for e in page if partition(e) == p]


async def test_entries_of_one_key_keep_their_order_when_all_share_the_key(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    page = entries(30, keys=1)
    await inbox.publish("bigchat", KEYSPACE, page)

    assert [entry for _, _, entry in await stored(raw, inbox.stream)] == page


async def test_republishing_within_the_window_reports_duplicates_and_stores_each_once(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    page = entries(20)
    await inbox.publish("bigchat", KEYSPACE, page[:12])

    assert await inbox.publish("bigchat", KEYSPACE, page) == (8, 12)
    assert [entry for _, _, entry in await stored(raw, inbox.stream)] == page


async def test_the_same_fingerprint_from_another_source_is_not_a_duplicate(
    inbox: JetStreamInbox,
) -> None:
    page = entries(3)
    await inbox.publish("bigchat", KEYSPACE, page)

    assert await inbox.publish("ourapi", KEYSPACE, page) == (3, 0)


async def test_publishing_nothing_stores_nothing(inbox: JetStreamInbox) -> None:
    assert await inbox.publish("bigchat", KEYSPACE, []) == (0, 0)
    assert [await inbox.last_seq(p) for p in range(PARTITIONS)] == [0] * PARTITIONS


async def test_publishing_to_an_unreachable_url_raises_inbox_unavailable_in_one_line() -> None:
    url = f"nats://iw:secret@127.0.0.1:{unused_port()}"
    inbox = JetStreamInbox(url, fresh_sync(), PARTITIONS, connect_timeout=0.5)
    started = time.monotonic()

    with pytest.raises(InboxUnavailable) as raised:
        await inbox.publish("bigchat", KEYSPACE, entries(3))

    message = str(raised.value)
    assert "\n" not in message
    assert "secret" not in message and "iw:***@127.0.0.1" in message
    assert time.monotonic() - started < 5  # a clear failure, not minutes of reconnect attempts
    await inbox.close()


class Proxy:
    """A TCP relay to the NATS server that the test can cut, as a network failure would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        """Listen (on ``port``, or any free one); the port listened on."""
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Close the listener and every relayed connection: the server is now unreachable."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    relay = Proxy(urlsplit(nats_url()).port or 4222)
    try:
        yield relay
    finally:
        if relay.server is not None and relay.server.is_serving():
            await relay.cut()


async def test_publishing_after_the_connection_is_lost_raises_inbox_unavailable(
    proxy: Proxy, raw: JetStreamContext
) -> None:
    port = await proxy.start()
    inbox = JetStreamInbox(f"nats://127.0.0.1:{port}", fresh_sync(), PARTITIONS, timeout=1.0)
    await inbox.connect()
    try:
        await proxy.cut()
        async with asyncio.timeout(15):
            with pytest.raises(InboxUnavailable) as raised:
                await inbox.publish("bigchat", KEYSPACE, entries(300))
        assert "\n" not in str(raised.value)
    finally:
        await inbox.close()
        await raw.delete_stream(inbox.stream)


async def test_publishing_again_after_a_lost_connection_stores_each_entry_once(
    proxy: Proxy, raw: JetStreamContext
) -> None:
    port = await proxy.start()
    inbox = JetStreamInbox(f"nats://127.0.0.1:{port}", fresh_sync(), PARTITIONS, timeout=1.0)
    await inbox.connect()
    page = entries(5_000)
    try:
        publishing = asyncio.create_task(inbox.publish("bigchat", KEYSPACE, page))
        for _ in range(1_000):  # cut once some are stored (all take some 0.4 s)
            await asyncio.sleep(0.001)
            if (await raw.stream_info(inbox.stream)).state.messages > 0:
                break
        await proxy.cut()
        with pytest.raises(InboxUnavailable):
            await publishing
        await proxy.start(port)

        result = None
        async with asyncio.timeout(20):
            while result is None:  # the client reconnects every 2 s; until then it fails
                with contextlib.suppress(InboxUnavailable):
                    result = await inbox.publish("bigchat", KEYSPACE, page)
        new, duplicate = result
        assert new + duplicate == len(page) and duplicate > 0
        messages = await stored(raw, inbox.stream)
        assert sorted(e.fingerprint for _, _, e in messages) == sorted(e.fingerprint for e in page)
        for key in {e.key for e in page}:
            assert [e for _, _, e in messages if e.key == key] == [e for e in page if e.key == key]
    finally:
        await inbox.close()
        await raw.delete_stream(inbox.stream)


async def test_a_fetch_raises_inbox_unavailable_once_the_connection_is_lost(
    proxy: Proxy, raw: JetStreamContext
) -> None:
    port = await proxy.start()
    inbox = JetStreamInbox(f"nats://127.0.0.1:{port}", fresh_sync(), PARTITIONS, timeout=1.0)
    await inbox.connect()
    try:
        reader = await inbox.open_reader(0, 0, name="cut-off")
        reader.gone_check_every = 0.0
        await proxy.cut()
        async with asyncio.timeout(15):
            with pytest.raises(InboxUnavailable):
                await reader.fetch(timeout=0.2)
        await reader.close()
    finally:
        await inbox.close()
        await raw.delete_stream(inbox.stream)


# -- the stream ---------------------------------------------------------------------------------


async def test_connect_refuses_an_existing_stream_with_other_subjects(
    raw: JetStreamContext,
) -> None:
    sync = fresh_sync()
    inbox = JetStreamInbox(nats_url(), sync, PARTITIONS)
    await raw.add_stream(name=inbox.stream, subjects=[f"other.{sync}.>"])
    try:
        with pytest.raises(InboxConflict, match="subjects"):
            await inbox.connect()
    finally:
        await inbox.close()
        await raw.delete_stream(inbox.stream)


async def test_connect_creates_the_stream_with_the_asked_limits(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    config = (await raw.stream_info(inbox.stream)).config

    assert config.subjects == [f"iw.{inbox.sync}.p.*"]
    assert config.storage == api.StorageType.FILE
    assert config.discard == api.DiscardPolicy.OLD
    assert (config.duplicate_window, config.max_age) == (120.0, 7 * 86400.0)


async def test_connecting_again_updates_the_streams_limits(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    again = JetStreamInbox(nats_url(), inbox.sync, PARTITIONS, duplicate_window=30.0)
    await again.connect()
    await again.close()

    assert (await raw.stream_info(inbox.stream)).config.duplicate_window == 30.0


# -- reading ------------------------------------------------------------------------------------


async def test_a_reader_sees_only_later_messages_of_its_own_partition(
    inbox: JetStreamInbox,
) -> None:
    page = entries(40)
    await inbox.publish("bigchat", KEYSPACE, page)
    target = partition(page[0])
    offsets = [d.stream_seq for d in await read_all(await inbox.open_reader(target, 0, name="a"))]
    after = offsets[2]

    reader = await inbox.open_reader(target, after, name="b")
    got = await read_all(reader)
    await reader.close()

    assert [d.stream_seq for d in got] == offsets[3:]
    assert [d.entry for d in got] == [e for e in page if partition(e) == target][3:]
    assert {d.source for d in got} == {"bigchat"}


async def test_a_reader_from_zero_sees_the_whole_partition(inbox: JetStreamInbox) -> None:
    page = entries(20)
    await inbox.publish("bigchat", KEYSPACE, page)
    target = partition(page[0])

    reader = await inbox.open_reader(target, 0, name="all")
    got = await read_all(reader)
    await reader.close()

    assert [d.entry for d in got] == [e for e in page if partition(e) == target]


async def test_a_fetch_on_an_idle_partition_returns_nothing(inbox: JetStreamInbox) -> None:
    reader = await inbox.open_reader(0, 0, name="idle")

    assert await reader.fetch(timeout=0.2) == []
    await reader.close()


async def test_readers_in_turn_see_every_message_once_even_when_one_stops_midway(
    inbox: JetStreamInbox,
) -> None:
    page = entries(60, keys=3)
    await inbox.publish("bigchat", KEYSPACE, page)
    target = partition(page[0])
    expected = [e for e in page if partition(e) == target]
    assert len(expected) >= 20

    first = await inbox.open_reader(target, 0, name=f"p{target}-w1-1")
    fetched = await first.fetch(batch=15, timeout=1.0)
    # The owner applied (and stored the offset of) only 5 of the 15 it was handed, then lost
    # its claim: the next owner must be handed the other 10 again.
    applied = fetched[:5]
    await first.close()
    second = await inbox.open_reader(target, applied[-1].stream_seq, name=f"p{target}-w2-2")
    rest = await read_all(second)
    await second.close()

    seen = applied + rest
    assert [d.entry for d in seen] == expected
    assert [d.stream_seq for d in seen] == sorted({d.stream_seq for d in seen})


async def test_a_readers_consumer_is_gone_after_close(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    reader = await inbox.open_reader(1, 0, name="closing")
    await raw.consumer_info(inbox.stream, "closing")

    await reader.close()

    with pytest.raises(nats.js.errors.NotFoundError):
        await raw.consumer_info(inbox.stream, "closing")


async def test_closing_a_reader_twice_does_not_raise(inbox: JetStreamInbox) -> None:
    reader = await inbox.open_reader(1, 0, name="twice")
    await reader.close()
    await reader.close()


async def test_a_readers_consumer_expires_by_itself_when_left_idle(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    await inbox.open_reader(2, 0, name="left")

    info = await raw.consumer_info(inbox.stream, "left")

    assert info.config.inactive_threshold == 60.0
    assert info.config.ack_policy == api.AckPolicy.NONE
    assert info.config.filter_subject == inbox.subject(2)


async def test_opening_a_reader_under_a_leftover_name_starts_afresh_at_the_offset(
    inbox: JetStreamInbox,
) -> None:
    page = entries(20, keys=1)
    await inbox.publish("bigchat", KEYSPACE, page)
    target = partition(page[0])
    # An earlier attempt created the consumer and read from it, but its answer was lost.
    stale = await inbox.open_reader(target, 0, name="again")
    await stale.fetch(batch=10, timeout=1.0)

    reader = await inbox.open_reader(target, 0, name="again")
    got = await read_all(reader)
    await reader.close()

    assert [d.entry for d in got] == page


async def test_a_fetch_raises_inbox_unavailable_once_its_consumer_is_gone(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    reader = await inbox.open_reader(3, 0, name="vanishing")
    reader.gone_check_every = 0.0
    await raw.delete_consumer(inbox.stream, "vanishing")

    with pytest.raises(InboxUnavailable, match="gone"):
        await reader.fetch(timeout=0.2)
    await reader.close()


# -- offsets and lag ----------------------------------------------------------------------------


async def test_last_seq_is_the_stream_seq_of_the_partitions_last_message(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    page = entries(40)
    await inbox.publish("bigchat", KEYSPACE, page)
    messages = await stored(raw, inbox.stream)

    for p in range(PARTITIONS):
        seqs = [seq for seq, subject, _ in messages if subject == inbox.subject(p)]
        assert await inbox.last_seq(p) == (seqs[-1] if seqs else 0)


async def test_last_seq_of_an_empty_partition_is_zero(inbox: JetStreamInbox) -> None:
    assert await inbox.last_seq(0) == 0


async def test_pending_after_counts_the_partitions_messages_after_the_offset(
    inbox: JetStreamInbox, raw: JetStreamContext
) -> None:
    page = entries(40)
    await inbox.publish("bigchat", KEYSPACE, page)
    target = partition(page[0])
    seqs = [
        seq
        for seq, subject, _ in await stored(raw, inbox.stream)
        if subject == inbox.subject(target)
    ]

    assert await inbox.pending_after(target, 0) == len(seqs)
    assert await inbox.pending_after(target, seqs[3]) == len(seqs) - 4
    assert await inbox.pending_after(target, seqs[-1]) == 0
    assert (await raw.stream_info(inbox.stream)).state.consumer_count == 0


# -- throughput (figures for the report, not assertions) -----------------------------------------


@pytest.mark.slow
async def test_throughput_of_publish_and_fetch(inbox: JetStreamInbox) -> None:
    count = 20_000
    page = [
        NewEntry(key=f"k{i % 1000}", kind="m", fingerprint=f"f{i}", payload='{"n":1}')
        for i in range(count)
    ]
    started = time.perf_counter()
    assert await inbox.publish("bench", KEYSPACE, page) == (count, 0)
    publish_s = time.perf_counter() - started

    started = time.perf_counter()
    fetched = 0
    for p in range(PARTITIONS):
        reader = await inbox.open_reader(p, 0, name=f"bench-{p}")
        # Stop on the server's own count of what is left, so no empty fetch is timed.
        while fetched < count and reader.pending != 0:
            fetched += len(await reader.fetch(batch=500, timeout=0.5))
        await reader.close()
    fetch_s = time.perf_counter() - started

    assert fetched == count
    print(
        f"\npublish: {count} entries in {publish_s:.2f} s = {count / publish_s:,.0f}/s; "
        f"fetch: {fetched} in {fetch_s:.2f} s = {fetched / fetch_s:,.0f}/s"
    )
