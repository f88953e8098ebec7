"""One worker's part in a sync run by several processes: heartbeat, claim and release
partitions, read each owned partition from JetStream into the inbox table, and take the poller
role when it is free.

The engine stays the one engine: it asks this object which partitions to feed from the inbox
table, whether an entry is still its own to apply, and, while this worker holds the poller role,
to publish what it polls (``publish``). The rules that keep every guarantee:

- a partition's entries are stored in the inbox table together with the partition's new offset,
  in one transaction that checks the claim's epoch (``PostgresStore.store_owned``), so an owner
  that lost its claim stores nothing more, and nothing read is lost or stored twice;
- a new owner reads the partition with a **fresh** consumer from the stored offset, never the
  old owner's: messages the old one had not acknowledged would come back behind newer ones;
- a worker gives a partition up only once none of its entries is in flight here (then the next
  owner cannot apply an entry of a key this one is still applying), and a worker that died
  gives its partitions up when its heartbeat is older than the TTL. What a dead owner was
  applying is pending in the inbox table with its intent: the next owner reads the target back
  before repeating an effect that may have landed (the sinks' rule, unchanged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..clock import Clock
from ..errors import TransientError
from ..state.postgres import FenceLost, PostgresStore
from ..state.records import InboxEntry, NewEntry
from ..stats import Stats
from .jetstream import InboxUnavailable, JetStreamInbox
from .partitions import partition_of
from .roles import Claim, Membership, PollerLock, fair_share

log = logging.getLogger("integration.distributed")

FETCH_BATCH = 500
CANCEL_TRIES = 10
FORGET_GONE_AFTER = 3600.0
"""Heartbeat rows of workers gone this long are deleted (kept a while for ``status``)."""


class WorkerHooks(Protocol):
    """What the coordinator needs from the engine it serves."""

    def partition_busy(self, part: int) -> bool:
        """Whether an entry of ``part`` is in flight (queued, applying, or applied and not yet
        marked done)."""
        ...

    async def flush_done(self) -> None: ...

    def inbox_grew(self, *, rescan: bool) -> None:
        """New entries may be pending (``rescan``: also behind what the feeder has read)."""
        ...

    def forget_cached(self) -> None:
        """Drop what the sinks remember of the targets: another worker may have written."""
        ...

    @property
    def stats(self) -> Stats: ...

    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True)
class DistributedSettings:
    partitions: int = 16
    heartbeat: float = 1.0
    """Seconds between heartbeats (and rebalance checks)."""
    worker_ttl: float = 5.0
    """A worker silent this long is gone: its partitions and the poller role are taken over."""


@dataclass
class _Owned:
    claim: Claim
    consumer: asyncio.Task[None]
    releasing: bool = False
    lag: int = 0


class Coordinator:
    def __init__(
        self,
        store: PostgresStore,
        inbox: JetStreamInbox,
        sync: str,
        worker: str,
        keyspaces: Mapping[str, str],
        settings: DistributedSettings,
    ) -> None:
        self.store = store
        self.inbox = inbox
        self.sync = sync
        self.worker = worker
        self.keyspaces = dict(keyspaces)
        """Each source's keyspace (its flow's order, or its own name)."""
        self.settings = settings
        self.membership = Membership(store, sync, worker, settings.partitions, settings.worker_ttl)
        self.poller = PollerLock(store.url, sync, worker, store.schema)
        self._owned: dict[int, _Owned] = {}
        self._hooks: WorkerHooks | None = None
        self._stopping = asyncio.Event()
        self.stats = Stats()
        """The engine's (``start`` takes them): per-partition lag and the poller role."""
        self._failure: BaseException | None = None

    # -- what the engine asks ----------------------------------------------------------------

    def partition(self, source: str, key: str) -> int:
        return partition_of(self.keyspaces.get(source, source), key, self.settings.partitions)

    def feeding(self) -> list[int]:
        """The partitions whose pending entries this worker applies now."""
        return sorted(p for p, owned in self._owned.items() if not owned.releasing)

    def applies(self, entry: InboxEntry) -> bool:
        """Whether ``entry`` is still this worker's to apply (its partition is owned and not
        being given up); otherwise it stays pending for the partition's owner."""
        owned = self._owned.get(self.partition(entry.source, entry.key))
        return owned is not None and not owned.releasing

    async def pending(self, source: str, after_seq: int, limit: int) -> list[InboxEntry]:
        parts = self.feeding()
        if not parts:
            return []
        return await self.store.pending(source, after_seq, limit, partitions=parts)

    async def publish(self, source: str, entries: Sequence[NewEntry]) -> tuple[int, int]:
        """The poller's: every entry to its partition's subject, every ack awaited."""
        return await self.inbox.publish(source, self.keyspaces.get(source, source), entries)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, hooks: WorkerHooks) -> None:
        """Connect to JetStream, join the membership, and give old pending entries their
        partitions. Raises what a start cannot get past (``StateError``, ``InboxUnavailable``)."""
        self._hooks = hooks
        self.stats = hooks.stats
        self.stats.polling = False
        self.store.partition_by(self.settings.partitions, self.keyspaces)
        await self.inbox.connect()
        await self.membership.join()
        assigned_now = await self.store.assign_missing_partitions()
        if assigned_now:
            log.info("gave %d pending entr(ies) from before their partitions", assigned_now)
        log.info(
            "worker %s joined %s: %d partition(s), heartbeat every %gs, gone after %gs",
            self.worker,
            self.sync,
            self.settings.partitions,
            self.settings.heartbeat,
            self.settings.worker_ttl,
        )

    async def stop(self) -> None:
        """After the engine finished what was in flight: give everything up at once."""
        self._stopping.set()
        await self._cancel_consumers(list(self._owned))
        try:
            await self.membership.leave()
        finally:
            await self.poller.release()
            await self.inbox.close()

    # -- membership and partitions -----------------------------------------------------------

    async def run_membership(self, stopping: asyncio.Event) -> None:
        """Heartbeat, and move partitions towards this worker's share, until ``stopping``. A
        heartbeat that cannot be written is a ``StateError``: the process stops, and its
        partitions go to the others after the TTL."""
        assert self._hooks is not None
        last_beat = time.monotonic()
        last_forget = 0.0
        while not stopping.is_set():
            await self.membership.heartbeat()
            now = time.monotonic()
            if now - last_beat > self.settings.worker_ttl and self._owned:
                # Silent longer than the TTL (a stall): others may have claimed our partitions
                # meanwhile. Stop reading them; the fenced writes would refuse anyway.
                log.warning(
                    "worker %s was silent for %.1fs (longer than the %gs TTL): giving up its "
                    "partitions and claiming them again",
                    self.worker,
                    now - last_beat,
                    self.settings.worker_ttl,
                )
                await self._cancel_consumers(list(self._owned))
            last_beat = now
            await self._rebalance()
            if now - last_forget > 60:
                await self.membership.forget_gone(FORGET_GONE_AFTER)
                last_forget = now
            if self._failure is not None:
                raise self._failure
            try:
                async with asyncio.timeout(self.settings.heartbeat):
                    await stopping.wait()
            except TimeoutError:
                pass

    async def _rebalance(self) -> None:
        """Move towards this worker's share, ceil(P / live workers), keeping what it owns
        (sticky: a worker joining or leaving moves only the partitions it must, not the whole
        split). Over its share, it gives the extras up once none of their entries is in flight;
        under it, it claims partitions that are free or whose owner is gone."""
        assert self._hooks is not None
        live = set(await self.membership.live()) | {self.worker}
        share = fair_share(self.settings.partitions, len(live))
        active = sorted(p for p, owned in self._owned.items() if not owned.releasing)
        for part in active[share:]:
            self._owned[part].releasing = True
            log.info(
                "partition %d: giving it up (%d live worker(s): a share is %d)",
                part,
                len(live),
                share,
            )
        for part, owned in sorted(self._owned.items()):
            if owned.releasing and not self._hooks.partition_busy(part):
                await self._cancel_consumers([part])
                await self._hooks.flush_done()
                await self.membership.release(owned.claim)
                log.info("partition %d: released", part)
        room = share - sum(1 for owned in self._owned.values() if not owned.releasing)
        if room <= 0:
            return
        claimable = [
            row.part
            for row in await self.membership.table()
            if row.part not in self._owned
            and (row.owner is None or row.owner == self.worker or not row.owner_alive)
        ]
        gained: list[int] = []
        for part in claimable:
            if len(gained) >= room:
                break
            claim = await self.membership.claim(part)
            if claim is None:
                continue  # another worker was quicker, or the owner came back
            task = asyncio.create_task(self._consume(claim), name=f"partition-{part}")
            task.add_done_callback(self._consumer_ended)
            self._owned[part] = _Owned(claim, task)
            gained.append(part)
        if gained:
            log.info(
                "claimed partition(s) %s (epoch %s); owning %d",
                ",".join(map(str, gained)),
                ",".join(str(self._owned[p].claim.epoch) for p in gained),
                len(self._owned),
            )
            # What this worker remembers of the targets may be stale: the partitions' previous
            # owners wrote meanwhile. And pending entries of the gained partitions may lie
            # behind the feeder's watermark.
            self._hooks.forget_cached()
            self._hooks.inbox_grew(rescan=True)

    def _consumer_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            self._failure = exc  # raised by the membership loop: the engine stops

    async def _cancel_consumers(self, parts: list[int]) -> None:
        tasks = []
        for part in parts:
            owned = self._owned.pop(part, None)
            if owned is not None:
                owned.consumer.cancel()
                tasks.append(owned.consumer)
                self.stats.partition_lag.pop(part, None)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self, claim: Claim) -> None:
        """Read the partition from the stored offset into the inbox table, until cancelled or
        the claim is lost. JetStream out of reach: retried with backoff, each time with a fresh
        consumer from the last stored offset."""
        assert self._hooks is not None
        part, offset = claim.part, claim.offset
        failures = 0
        while not self._stopping.is_set():
            name = f"p{part}-{self.worker}-{claim.epoch}-{failures}"
            try:
                reader = await self.inbox.open_reader(part, offset, name=name)
                try:
                    lag_checked = 0.0
                    while not self._stopping.is_set():
                        delivered = await reader.fetch(FETCH_BATCH, 1.0)
                        if time.monotonic() - lag_checked > 5.0:
                            lag_checked = time.monotonic()
                            self.stats.partition_lag[part] = await self.inbox.pending_after(
                                part, offset
                            )
                        if not delivered:
                            self.stats.partition_lag[part] = 0
                            continue
                        by_source: dict[str, list[NewEntry]] = defaultdict(list)
                        for item in delivered:
                            by_source[item.source].append(item.entry)
                        last = delivered[-1].stream_seq
                        await self.store.store_owned(self.sync, part, claim.epoch, last, by_source)
                        offset = last
                        failures = 0
                        self._hooks.inbox_grew(rescan=False)
                finally:
                    await reader.close()
            except FenceLost as exc:
                log.info("partition %d: %s; no longer reading it", part, exc)
                self._owned.pop(part, None)
                self.stats.partition_lag.pop(part, None)
                return
            except (InboxUnavailable, TransientError) as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "partition %d: cannot read the inbox (%s); again in %.1fs",
                    part,
                    exc,
                    delay,
                )
                try:
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                except TimeoutError:
                    pass

    # -- the poller role ---------------------------------------------------------------------

    async def run_poller_role(
        self, stopping: asyncio.Event, lead: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    ) -> None:
        """Wait for the poller role; once this worker holds it, fence the cursors, and run
        ``lead`` (the engine's polling) while checking, every heartbeat, that the lock's
        connection is still there: losing it stops the process (a ``StateError``)."""
        while not stopping.is_set():
            epoch = await self.poller.try_acquire()
            if epoch is not None:
                break
            try:
                async with asyncio.timeout(self.settings.heartbeat):
                    await stopping.wait()
            except TimeoutError:
                pass
        else:
            return
        self.store.fence_cursors(self.poller.fence, epoch)
        self.stats.polling = True
        self.stats.polling_since = self._hooks.clock.now() if self._hooks else None
        log.info("worker %s holds the poller role (epoch %d)", self.worker, epoch)
        polling = asyncio.create_task(lead(stopping), name="lead")
        try:
            while not polling.done():
                done, _ = await asyncio.wait({polling}, timeout=self.settings.heartbeat)
                if not done:
                    await self.poller.check()
            await polling
        finally:
            # Cancelled again until it ends: Python 3.11 can lose a cancellation that arrives as
            # an ``asyncio.timeout`` expires (the HTTP client then sees a timeout and retries),
            # and a poller that lost its role must not poll on while this waits for it.
            for _ in range(CANCEL_TRIES):
                if polling.done():
                    break
                polling.cancel()
                await asyncio.wait({polling}, timeout=self.settings.heartbeat)
            if not polling.done():
                log.error("the polling did not stop when cancelled %d times", CANCEL_TRIES)
            elif not polling.cancelled():
                polling.exception()  # retrieved: the error that ends the role is raised above
