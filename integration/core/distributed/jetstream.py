"""The inbox on NATS JetStream: one stream per sync, one subject per partition.

The poller publishes every fetched entry to its partition's subject; the partition's owner reads
it back with a consumer of its own. The stream sequence of a message is the partition's offset,
kept by the reader in PostgreSQL, which is why consumers acknowledge nothing (``AckPolicy.NONE``)
and are never reused: a reader always starts a fresh consumer right after the offset it holds, so
whatever an earlier consumer delivered but nobody stored is delivered again.

De-duplication is JetStream's: each message carries ``Nats-Msg-Id = source:fingerprint``, so an
entry published again within the duplicate window (a page fetched twice, a publish retried after a
lost ack) is stored once.

Only the single ``filter_subject`` is used: NATS 2.9 silently ignores ``filter_subjects`` and
subject transforms, which would make a consumer read every partition.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
import nats.nuid
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from integration.core.distributed.partitions import partition_of
from integration.core.errors import IntegrationError, TransientError
from integration.core.http import mask_url
from integration.core.state.records import NewEntry, dumps

log = logging.getLogger(__name__)

SOURCE_HEADER = "Iw-Source"
"""Carries the flow's source name, so a reader need not parse the message id."""

MAX_IN_FLIGHT = 256
"""Publishes awaiting their ack at once: enough to hide the round trip, small enough to bound the
memory and the work a lost connection leaves undecided."""

CONSUMER_IDLE = 60.0
"""Seconds without a pull after which the server deletes a reader's consumer by itself (the
reader's process was killed and never closed it)."""

_GONE_CHECK_EVERY = 5.0
"""Seconds between checks, while fetches come back empty, that the reader's consumer still exists:
a pull on a deleted consumer is not answered at all, so it would look like an idle partition."""

_FAILURES = (OSError, nats.errors.Error)
"""What a call to NATS raises when the server is unreachable or slow: asyncio's and nats-py's
timeouts are both ``TimeoutError``, an ``OSError``; nats-py's own errors all derive from
``nats.errors.Error`` (JetStream API refusals included)."""

_SYNC_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class InboxUnavailable(TransientError):
    """NATS cannot be reached or did not answer in time; worth retrying."""


class InboxConflict(IntegrationError):
    """The stream exists with another shape (other subjects, storage) or its subjects are taken."""


@dataclass(frozen=True)
class Delivered:
    stream_seq: int
    """The JetStream stream sequence: the partition's offset."""
    source: str
    """The flow's source name."""
    entry: NewEntry


def _describe(exc: BaseException) -> str:
    """``exc`` as a short single line (nats-py's ``str`` of a timeout is just ``nats: timeout``)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _encode(entry: NewEntry) -> bytes:
    return dumps(
        {
            "key": entry.key,
            "kind": entry.kind,
            "fingerprint": entry.fingerprint,
            "payload": entry.payload,
            "occurred_at": entry.occurred_at,
        }
    ).encode()


def _decode(data: bytes) -> NewEntry:
    fields = json.loads(data)
    return NewEntry(
        key=fields["key"],
        kind=fields["kind"],
        fingerprint=fields["fingerprint"],
        payload=fields["payload"],
        occurred_at=fields.get("occurred_at"),
    )


def stream_name(sync: str) -> str:
    """The default stream of a sync: ``IW_<SYNC>`` in the characters a stream name may use."""
    return "IW_" + re.sub(r"[^A-Z0-9_]", "_", sync.upper())


class JetStreamInbox:
    """The partitioned inbox of one sync on a JetStream server."""

    def __init__(
        self,
        url: str,
        sync: str,
        partitions: int,
        *,
        stream: str | None = None,
        duplicate_window: float = 120.0,
        max_age: float = 7 * 86400.0,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        if not _SYNC_NAME.match(sync):
            # The name is a subject token: a dot or a wildcard in it would change what matches.
            raise ValueError(f"sync name {sync!r} must be letters, digits, '_' or '-'")
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.url = url
        self.sync = sync
        self.partitions = partitions
        self.stream = stream or stream_name(sync)
        self.duplicate_window = duplicate_window
        self.max_age = max_age
        self.timeout = timeout
        """Seconds to wait for any one answer of the server (an ack, an API call)."""
        self.connect_timeout = connect_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        """Shared by concurrent publish calls, so the bound holds for the connection."""

    # -- connection and stream ------------------------------------------------------------------

    def _unavailable(self, doing: str, exc: BaseException) -> InboxUnavailable:
        return InboxUnavailable(f"NATS at {mask_url(self.url)}: {doing}: {_describe(exc)}")

    @property
    def _wildcard(self) -> str:
        return f"iw.{self.sync}.p.*"

    def subject(self, partition: int) -> str:
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in range({self.partitions})")
        return f"iw.{self.sync}.p.{partition}"

    async def connect(self) -> None:
        """Connect and create (or bring up to date) the stream; InboxUnavailable if unreachable."""
        if self._nc is not None:
            return

        attempts: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            # nats-py's default logs every failed attempt with a traceback.
            attempts.append(exc)
            log.warning("NATS at %s: %s", mask_url(self.url), _describe(exc))

        async def on_disconnect() -> None:
            if self._nc is None:  # closed on purpose
                return
            log.warning("NATS at %s: disconnected, reconnecting", mask_url(self.url))

        async def on_reconnect() -> None:
            log.info("NATS at %s: reconnected", mask_url(self.url))

        try:
            # One attempt and one retry: with nats-py's defaults an unreachable server keeps the
            # first connect retrying for minutes instead of saying so.
            nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=self.connect_timeout,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.2,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                    name=f"iw-{self.sync}",
                ),
                timeout=self.connect_timeout * 3,
            )
        except _FAILURES as exc:
            # nats-py ends with "no servers available": the attempts' own error says more.
            raise self._unavailable("cannot connect", attempts[-1] if attempts else exc) from None
        # Once connected, a lost connection is retried for ever (every 2 s) rather than closing
        # the client for good: each call meanwhile fails with InboxUnavailable and is retried.
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 2
        self._nc = nc
        # nats-py's own bound on publishes in flight is waited for with asyncio.wait_for even
        # when free (see publish), so ours applies and its own is set never to bind.
        self._js = nc.jetstream(timeout=self.timeout, publish_async_max_pending=MAX_IN_FLIGHT * 4)
        try:
            await self._ensure_stream()
        except BaseException:
            await self.close()
            raise

    def _stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.stream,
            subjects=[self._wildcard],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.OLD,
            duplicate_window=self.duplicate_window,
            max_age=self.max_age,
            num_replicas=1,
        )

    async def _ensure_stream(self) -> None:
        js = await self._context()
        config = self._stream_config()
        try:
            try:
                info = await js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
                return
            subjects = info.config.subjects or []
            if subjects != [self._wildcard]:
                raise InboxConflict(
                    f"stream {self.stream} on NATS at {mask_url(self.url)} has subjects "
                    f"{subjects}, not [{self._wildcard!r}]: another sync's stream? "
                    "Pass another stream name or delete that stream"
                )
            await js.update_stream(config)
        except nats.js.errors.APIError as exc:
            if exc.code in (400, 500):
                # Refused: subjects taken by another stream, storage cannot change, etc.
                raise InboxConflict(
                    f"stream {self.stream} on NATS at {mask_url(self.url)}: {_describe(exc)}"
                ) from None
            raise self._unavailable(f"cannot set up stream {self.stream}", exc) from None
        except _FAILURES as exc:
            raise self._unavailable(f"cannot set up stream {self.stream}", exc) from None

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception as exc:  # closing is best effort: the process is stopping anyway
                log.warning("closing NATS at %s: %s", mask_url(self.url), _describe(exc))

    async def _context(self) -> JetStreamContext:
        """The JetStream context, connecting first if need be (after a failed ``connect``)."""
        if self._js is None:
            await self.connect()
        assert self._js is not None
        return self._js

    # -- publishing -----------------------------------------------------------------------------

    async def publish(
        self, source: str, keyspace: str, entries: Sequence[NewEntry]
    ) -> tuple[int, int]:
        """Publish ``entries`` and wait for every ack; (new, duplicate) by the acks' flags.

        Sent in the given order, up to ``MAX_IN_FLIGHT`` awaiting their ack, except that an entry
        waits for the ack of the previous entry of the same key: were both in flight, a lost
        connection could store the later one and lose the earlier, which a retry would then
        store after it. Entries of different keys may be stored out of order on such a failure.
        Any failure raises InboxUnavailable; the caller publishes the same entries again.
        """
        js = await self._context()
        slots = self._in_flight
        futures: list[asyncio.Future[api.PubAck]] = []
        last_of_key: dict[str, asyncio.Future[api.PubAck]] = {}
        try:
            for entry in entries:
                previous = last_of_key.get(entry.key)
                if previous is not None and not previous.done():
                    await asyncio.wait_for(asyncio.shield(previous), self.timeout)
                elif previous is not None:
                    previous.result()  # raises its failure: later entries of the key must wait
                if slots.locked():
                    await asyncio.wait_for(slots.acquire(), self.timeout)
                else:
                    # No wait_for when a slot is free: it would yield to the event loop after
                    # every message, and nats-py's flusher would then send each in a syscall
                    # of its own (measured: 3 to 4 times slower).
                    await slots.acquire()
                partition = partition_of(keyspace, entry.key, self.partitions)
                try:
                    future = await js.publish_async(
                        self.subject(partition),
                        _encode(entry),
                        # The server refuses the message if another stream took the subject.
                        stream=self.stream,
                        headers={
                            "Nats-Msg-Id": f"{source}:{entry.fingerprint}",
                            SOURCE_HEADER: source,
                        },
                    )
                except BaseException:
                    slots.release()
                    raise
                future.add_done_callback(lambda _: slots.release())
                futures.append(future)
                last_of_key[entry.key] = future
            if futures:
                _, pending = await asyncio.wait(futures, timeout=self.timeout)
                if pending:
                    raise TimeoutError(f"{len(pending)} acks did not come in time")
            new = duplicate = 0
            for future in futures:
                if future.result().duplicate:
                    duplicate += 1
                else:
                    new += 1
            return new, duplicate
        except _FAILURES as exc:
            raise self._unavailable(f"cannot publish to stream {self.stream}", exc) from None
        finally:
            # Cancelling frees their slots in nats-py's in-flight limit; a late ack is dropped.
            for future in futures:
                if not future.done():
                    future.cancel()

    # -- reading --------------------------------------------------------------------------------

    def _consumer_config(
        self, partition: int, after_seq: int, name: str, idle: float
    ) -> api.ConsumerConfig:
        start: dict[str, Any] = (
            {"deliver_policy": api.DeliverPolicy.ALL}
            if after_seq <= 0
            else {
                "deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": after_seq + 1,
            }
        )
        return api.ConsumerConfig(
            name=name,
            filter_subject=self.subject(partition),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=idle,
            num_replicas=1,
            # Its state is worth nothing after a restart (the offset is the caller's), so it
            # need not be written to disk.
            mem_storage=True,
            **start,
        )

    async def open_reader(self, partition: int, after_seq: int, *, name: str) -> PartitionReader:
        """A reader of ``partition`` from stream sequence ``after_seq + 1``, on a new consumer.

        A consumer left under ``name`` (an earlier attempt whose answer was lost) is deleted
        first: creating one with the same name and settings would silently return the old one,
        positioned wherever it stopped.
        """
        js = await self._context()
        config = self._consumer_config(partition, after_seq, name, CONSUMER_IDLE)
        try:
            try:
                await js.delete_consumer(self.stream, name)
                log.warning("deleted a leftover consumer %s on stream %s", name, self.stream)
            except nats.js.errors.NotFoundError:
                pass
            await js.add_consumer(self.stream, config)
            subscription = await js.pull_subscribe_bind(name, stream=self.stream)
        except _FAILURES as exc:
            raise self._unavailable(f"cannot open a reader of partition {partition}", exc) from None
        return PartitionReader(self, partition, name, subscription)

    async def last_seq(self, partition: int) -> int:
        """The stream sequence of the partition's last message; 0 when it has none."""
        js = await self._context()
        try:
            message = await js.get_last_msg(self.stream, self.subject(partition))
        except nats.js.errors.NotFoundError:
            return 0
        except _FAILURES as exc:
            raise self._unavailable(f"cannot read the end of partition {partition}", exc) from None
        return int(message.seq or 0)

    async def pending_after(self, partition: int, after_seq: int) -> int:
        """How many messages of the partition lie after stream sequence ``after_seq`` (its lag).

        Asks a throw-away consumer positioned there for its ``num_pending`` (stream info only
        counts a subject's messages in total): two API calls.
        """
        js = await self._context()
        name = f"lag-{partition}-{nats.nuid.NUID().next().decode()}"
        # Short idle threshold: if the delete below is lost, the server drops it soon anyway.
        config = self._consumer_config(partition, after_seq, name, 5.0)
        try:
            info = await js.add_consumer(self.stream, config)
        except _FAILURES as exc:
            raise self._unavailable(
                f"cannot measure the lag of partition {partition}", exc
            ) from None
        try:
            await js.delete_consumer(self.stream, name)
        except _FAILURES as exc:
            log.warning("deleting lag consumer %s: %s", name, _describe(exc))
        return int(info.num_pending or 0)

    async def _consumer_exists(self, name: str) -> bool:
        try:
            await (await self._context()).consumer_info(self.stream, name, timeout=self.timeout)
        except nats.js.errors.NotFoundError:
            return False
        return True


class PartitionReader:
    """Reads one partition in stream order through a consumer of its own."""

    def __init__(
        self,
        inbox: JetStreamInbox,
        partition: int,
        name: str,
        subscription: JetStreamContext.PullSubscription,
    ) -> None:
        self.partition = partition
        self.name = name
        self._inbox = inbox
        self._subscription = subscription
        self._next_consumer_seq = 1
        self._checked_at = time.monotonic()
        self.gone_check_every = _GONE_CHECK_EVERY
        self.pending: int | None = None
        """Messages the server still had for this consumer after the last one fetched."""

    async def fetch(
        self,
        batch: int = 500,
        # The server's pull expiry, which asyncio.timeout around the call could not set.
        timeout: float = 1.0,  # noqa: ASYNC109
    ) -> list[Delivered]:
        """The next messages in stream order; [] when none arrive within ``timeout``."""
        inbox = self._inbox
        try:
            try:
                messages = await self._subscription.fetch(batch, timeout=timeout)
            except TimeoutError:  # nats-py's, or asyncio's when its wait ran out first
                await self._check_alive()
                return []
        except _FAILURES as exc:
            raise inbox._unavailable(f"cannot read partition {self.partition}", exc) from None
        delivered = [self._deliver(message) for message in messages]
        self._checked_at = time.monotonic()
        return delivered

    def _deliver(self, message: Msg) -> Delivered:
        metadata = message.metadata
        # Consumer sequences count deliveries one by one; a hole means messages were dropped
        # on the way (a slow subscriber, a reconnect) and, with no acks, will never come again.
        if metadata.sequence.consumer != self._next_consumer_seq:
            raise InboxUnavailable(
                f"reader {self.name} of partition {self.partition}: messages lost in transit "
                f"(delivery {metadata.sequence.consumer}, expected {self._next_consumer_seq}); "
                "open a new reader"
            )
        self._next_consumer_seq += 1
        self.pending = metadata.num_pending
        headers = message.headers or {}
        return Delivered(
            stream_seq=metadata.sequence.stream,
            source=headers.get(SOURCE_HEADER, ""),
            entry=_decode(message.data),
        )

    async def _check_alive(self) -> None:
        """Raise InboxUnavailable if the consumer is gone (a pull on it is just never answered)."""
        now = time.monotonic()
        if now - self._checked_at < self.gone_check_every:
            return
        self._checked_at = now
        if not await self._inbox._consumer_exists(self.name):
            raise InboxUnavailable(
                f"reader {self.name} of partition {self.partition}: its consumer is gone "
                "(idle too long, or the server restarted); open a new reader"
            )

    async def close(self) -> None:
        """Delete the consumer; best effort (it also expires by itself when idle)."""
        try:
            await self._subscription.unsubscribe()
        except Exception as exc:
            log.debug("unsubscribing reader %s: %s", self.name, _describe(exc))
        js = self._inbox._js  # not _context(): closing must not connect again
        if js is None:
            return
        try:
            await js.delete_consumer(self._inbox.stream, self.name)
        except Exception as exc:
            log.warning("deleting consumer %s: %s", self.name, _describe(exc))
