"""Three workers on JetStream and PostgreSQL, killed over and over, the poller among them.

The world is as hostile as in the one-process crash suite: BigChat live (each event served once,
repeated texts, events in one second, messages long after the END), with 5xx, duplicates and late
events; OurAPI with 5xx and ambiguous writes (the write lands, the answer is lost). SIGKILLs land
on any of the three workers at random moments, and on the poller right before or right after
BigChat serves it a page. Then the world stops, the faults go off, the workers drain, and OurAPI
must hold every conversation exactly once (checked against BigChat's full history).

Seeded: ``CRASH_SEED=N pytest tests/bigchat_ourapi/test_workers.py`` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from big_chat.app import FAULTS as BIGCHAT_FAULTS
from our_api.app import INJECTOR as OURAPI_FAULTS
from our_api.settings import FaultSettings as OurApiFaults
from tests.helpers.cli import free_port
from tests.helpers.nats import nats_url
from tests.helpers.stores import cut_advisory_lock, postgres_database

from .processes import ROOT, WorkerProcess
from .test_crash import worker_env
from .test_crash_suite import LIVE_BIGCHAT, OURAPI, LiveClock, PageKiller
from .test_sync import assert_mirrored

pytestmark = pytest.mark.slow  # three worker processes, killed a score of times

KILLS = 18
OWNER_KILLS_LAST = 4
"""Ending ``owners``: the last kills land on workers that do not poll, while the world moves."""
WITHOUT_HISTORY_ONLY_EVENTS = {"missing_start_rate": 0, "same_second_rate": 0}
"""Ending ``owners``: two things only a recovery (reading histories) can find, which that ending
must do without: a conversation whose only event when the world stops is a START /events never
serves, and one of two identical messages of one second served in different answers (documented:
taken for one). Every other quirk stays on."""
WORKERS = 3
PARTITIONS = 6


class DelayedKiller(PageKiller):
    """A ``PageKiller`` that can kill ``delay`` seconds after its page, not at once."""

    delay = 0.0

    def _kill(self) -> None:
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, super()._kill)
            self.after_pages = None
        else:
            super()._kill()


async def poller_pid(url: str) -> int | None:
    """The pid of the worker holding the poller role (its id is ``host-pid-random``)."""
    conn = await asyncpg.connect(url)
    try:
        holder = await conn.fetchval(
            "SELECT holder FROM integration.fences WHERE name = 'poller:bigchat'"
        )
    except asyncpg.UndefinedTableError:  # no worker has created the schema yet
        return None
    finally:
        await conn.close()
    return int(holder.rsplit("-", 2)[1]) if holder else None


async def progress(
    url: str, nats: str, inbox_name: str, partitions: int = PARTITIONS
) -> tuple[float, int, int]:
    """(cursor, pending entries, messages in JetStream not yet stored) as seen from outside."""
    from integration.core.distributed.jetstream import JetStreamInbox

    conn = await asyncpg.connect(url)
    try:
        cursor = await conn.fetchval(
            "SELECT position FROM integration.cursors WHERE name = 'bigchat'"
        )
        pending = await conn.fetchval(
            "SELECT count(*) FROM integration.inbox WHERE state = 'pending'"
        )
        offsets = await conn.fetch("SELECT part, stream_offset FROM integration.partitions")
    finally:
        await conn.close()
    inbox = JetStreamInbox(nats, inbox_name, partitions)
    unread = 0
    try:
        for row in offsets:
            unread += await inbox.pending_after(row["part"], row["stream_offset"])
    finally:
        await inbox.close()
    return float(cursor or 0), int(pending), unread


async def drained(
    url: str,
    nats: str,
    inbox_name: str,
    end: float,
    workers: list[WorkerProcess],
    context: str = "",
    partitions: int = PARTITIONS,
) -> None:
    """Wait until the cursor is past ``end`` (the world's last second), nothing is pending and
    JetStream holds nothing unread, three times in a row; every worker still running."""
    async with asyncio.timeout(180):
        calm = 0
        while calm < 3:
            await asyncio.sleep(0.5)
            for worker in workers:
                assert worker.process.returncode is None, (
                    f"a worker exited {worker.process.returncode}; {context}\n"
                    f"{worker.log()[-3000:]}"
                )
            cursor, pending, unread = await progress(url, nats, inbox_name, partitions)
            calm = calm + 1 if cursor >= end + 1 and pending == 0 and unread == 0 else 0


async def delete_stream(nats: str, inbox_name: str) -> None:
    import nats as nats_py

    from integration.core.distributed.jetstream import stream_name

    client = await nats_py.connect(nats, max_reconnect_attempts=1)
    try:
        await client.jetstream().delete_stream(stream_name(inbox_name))
    except Exception:  # never created (the run failed before): nothing to clean
        pass
    finally:
        await client.close()


@pytest.mark.parametrize("ending", ["poller", "owners"])
async def test_three_workers_killed_over_and_over_apply_every_event_exactly_once(
    start_standins: Any, spawn: Any, tmp_path: Path, ending: str
) -> None:
    """Two endings. ``poller``: the world at its most hostile, and once it stops the poller is
    killed once more, so that its successor's recovery reads the histories after the end (as the
    one-process suite ends). ``owners``: the last kills spare the poller, so no recovery runs
    after them and nothing an owner lost can be healed: what a partition's owner had read when
    it died must be read again by the next one."""
    nats = nats_url()
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(1_000_000))
    rng = random.Random(seed)
    clock = LiveClock()
    standins = await start_standins(
        bigchat={
            "seed": seed % 1000,
            **LIVE_BIGCHAT,
            **(WITHOUT_HISTORY_ONLY_EVENTS if ending == "owners" else {}),
        },
        ourapi=OURAPI,
        clock=clock,
    )
    killer = DelayedKiller(standins.bigchat_app)
    inbox_name = f"t{uuid.uuid4().hex[:10]}"
    async with postgres_database() as url:
        env = worker_env(
            standins,
            STATE_URL=url,
            INBOX_URL=nats,
            INBOX_NAME=inbox_name,
            PARTITIONS=str(PARTITIONS),
            WORKER_TTL="2",
            MAX_WINDOW="60",
            CONCURRENCY="8",
            HTTP_TIMEOUT="2",
        )
        logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
        context = f"seed {seed} (replay with CRASH_SEED={seed}); worker logs in {tmp_path}"
        try:
            workers: list[WorkerProcess] = [await spawn(env, log) for log in logs]
            for worker in workers:
                await worker.wait_started(0)
            async with asyncio.timeout(30):  # the first poller has taken the role
                # Polling: the role is taken in another process, with nothing to wait on here.
                while await poller_pid(url) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            kills = poller_kills = 0
            while kills < KILLS:
                await asyncio.sleep(rng.uniform(0.3, 1.2))
                for i, worker in enumerate(workers):
                    assert worker.process.returncode in (None, -signal.SIGKILL), (
                        f"worker {i} exited {worker.process.returncode} by itself; {context}\n"
                        f"{worker.log()[-3000:]}"
                    )
                poller = await poller_pid(url)
                # The last kills spare the poller: the recovery a new poller runs re-reads every
                # conversation and would heal what a partition's owner lost, hiding it.
                owners_only = ending == "owners" and kills >= KILLS - OWNER_KILLS_LAST
                by_page = poller is not None and kills % 3 == 0 and not owners_only
                if by_page:
                    # The poller, right before or right after a page is served: events that
                    # BigChat will never serve again are in flight.
                    victim = next((w for w in workers if w.pid == poller), None)
                    if victim is None:
                        continue  # the role is between holders
                    killer.arm(victim, rng.randint(1, 3), before=rng.random() < 0.5)
                    try:
                        await asyncio.wait_for(victim.process.wait(), 5)
                    except TimeoutError:
                        victim.process.kill()
                        await victim.process.wait()
                    killer.arm(victim, None, before=False)
                elif owners_only:
                    # An owner, a few milliseconds after BigChat served the poller a page: the
                    # page's entries are on their way to their partitions' owners, this one's
                    # among them, read and not yet stored when it dies.
                    victim = rng.choice([w for w in workers if w.pid != poller])
                    killer.delay = rng.uniform(0.01, 0.08)
                    killer.arm(victim, rng.randint(1, 2), before=False)
                    try:
                        await asyncio.wait_for(victim.process.wait(), 5)
                    except TimeoutError:
                        victim.process.kill()
                        await victim.process.wait()
                    killer.arm(victim, None, before=False)
                    killer.delay = 0.0
                else:
                    victim = rng.choice(workers)
                    victim.process.kill()
                    await victim.process.wait()
                poller_kills += victim.pid == poller
                kills += 1
                index = workers.index(victim)
                starts = victim.starts_logged()
                workers[index] = await spawn(env, logs[index])
                # A death while Python is still importing proves nothing: the next kill comes
                # once the new worker has started.
                await workers[index].wait_started(starts)

            # The storm is over: the world stops, faults off; the three drain what is left.
            end = clock.freeze()
            standins.frozen_now = end
            standins.bigchat_app[BIGCHAT_FAULTS].update(
                {"error_rate": 0, "late_rate": 0, "duplicate_rate": 0}
            )
            standins.ourapi_app[OURAPI_FAULTS].update(OurApiFaults())
            if ending == "poller":
                poller = await poller_pid(url)
                victim = next((w for w in workers if w.pid == poller), None)
                if victim is not None:
                    victim.process.kill()
                    await victim.process.wait()
                    index = workers.index(victim)
                    workers[index] = await spawn(env, logs[index])
            await drained(url, nats, inbox_name, end, workers, context)
            codes = [await worker.stop() for worker in workers]
            assert codes == [0] * WORKERS, context
        finally:
            await delete_stream(nats, inbox_name)

    assert kills >= 15
    assert poller_kills >= 3, f"the poller was killed {poller_kills} time(s); {context}"
    report = await standins.verify()
    print(
        f"seed {seed}: {kills} kills ({poller_kills} of the poller); "
        f"{report.conversations} conversations, {report.messages_expected} messages"
    )
    try:
        assert_mirrored(report)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{context}") from None


# -- the shell around several workers ----------------------------------------------------------


def run_py(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("STATE_", "INBOX_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        cwd=ROOT,
    )


def test_an_inbox_without_a_shared_state_is_refused_in_one_line_naming_both() -> None:
    done = run_py("run", INBOX_URL="nats://127.0.0.1:4222")

    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "INBOX_URL" in line and "STATE_URL" in line


def test_drain_mode_with_several_workers_is_refused_in_one_line() -> None:
    done = run_py(
        "run",
        "--once",
        INBOX_URL="nats://127.0.0.1:4222",
        STATE_URL="postgresql://postgres@127.0.0.1:5432/postgres",
    )

    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "--once drains with one process" in line


async def test_a_worker_that_loses_the_connection_holding_the_poller_role_stops_with_status_1(
    start_live_standins: Any, spawn: Any, tmp_path: Path
) -> None:
    nats = nats_url()
    standins = await start_live_standins()
    inbox_name = f"t{uuid.uuid4().hex[:10]}"
    async with postgres_database() as url:
        env = worker_env(standins, STATE_URL=url, INBOX_URL=nats, INBOX_NAME=inbox_name)
        try:
            worker = await spawn(env, tmp_path / "worker.log")
            async with asyncio.timeout(30):
                while await poller_pid(url) != worker.pid:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await terminate_poller_lock(url)

            assert await worker.wait(30) == 1
            assert "lost the connection holding the poller role" in worker.log()
            assert "Traceback" not in worker.log()
        finally:
            await delete_stream(nats, inbox_name)


async def test_status_shows_the_workers_who_polls_and_each_partitions_owner_and_lag(
    start_live_standins: Any, spawn: Any, tmp_path: Path
) -> None:
    nats = nats_url()
    standins = await start_live_standins()
    inbox_name = f"t{uuid.uuid4().hex[:10]}"
    async with postgres_database() as url:
        env = worker_env(
            standins, STATE_URL=url, INBOX_URL=nats, INBOX_NAME=inbox_name, PARTITIONS="4"
        )
        try:
            port = free_port()
            workers = [
                await spawn({**env, "METRICS_PORT": str(port)}, tmp_path / "worker0.log"),
                await spawn(env, tmp_path / "worker1.log"),
            ]
            async with asyncio.timeout(30):
                while await poller_pid(url) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                while True:
                    cursor, pending, unread = await progress(url, nats, inbox_name, 4)
                    if cursor >= standins.frozen_now and pending == 0 and unread == 0:
                        break
                    await asyncio.sleep(0.2)
            shown = run_py("status", STATE_URL=url, INBOX_URL=nats, INBOX_NAME=inbox_name).stdout
            async with asyncio.timeout(15):  # each owned partition read once at least
                while True:
                    async with standins.session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        metrics = await resp.text()
                    if metrics.count("integration_partition_lag_messages{") == 2:
                        break
                    await asyncio.sleep(0.2)
            assert [await w.stop() for w in workers] == [0, 0]
        finally:
            await delete_stream(nats, inbox_name)

    lines = shown.splitlines()
    assert any(line.startswith("workers          2 live: ") for line in lines), shown
    poller = next(line for line in lines if line.startswith("poller"))
    assert "(fence epoch 1)" in poller
    table = lines[lines.index(next(x for x in lines if "part  owner" in x)) + 1 :]
    assert len(table) == 4
    owners = {row.split()[1] for row in table}
    assert len(owners) == 2  # two workers, two partitions each
    assert {row.split()[-1] for row in table} == {"0"}  # nothing waiting in JetStream
    # The first worker's metrics: its role, and a lag per partition it owns.
    assert "integration_poller_role " in metrics
    lags = [x for x in metrics.splitlines() if x.startswith("integration_partition_lag_messages{")]
    assert len(lags) == 2, metrics


async def terminate_poller_lock(url: str) -> None:
    """Cut the poller's lock connection: its process lives on for a moment, still polling,
    while another worker takes the role."""
    await cut_advisory_lock(url, "integration-worker:poller:integration:bigchat")


async def test_a_poller_cut_from_its_lock_while_polling_loses_nothing_to_the_next_one(
    start_standins: Any, spawn: Any, tmp_path: Path
) -> None:
    nats = nats_url()
    clock = LiveClock()
    standins = await start_standins(
        bigchat={"seed": 5, **LIVE_BIGCHAT, "error_rate": 0, "page_size": 3}, clock=clock
    )
    inbox_name = f"t{uuid.uuid4().hex[:10]}"
    async with postgres_database() as url:
        env = worker_env(
            standins,
            STATE_URL=url,
            INBOX_URL=nats,
            INBOX_NAME=inbox_name,
            PARTITIONS="4",
            WORKER_TTL="2",
            POLL_INTERVAL="0.05",
        )
        logs = [tmp_path / f"worker{i}.log" for i in range(2)]
        try:
            workers = [await spawn(env, log) for log in logs]
            for _cut in range(4):
                async with asyncio.timeout(30):
                    while await poller_pid(url) is None:  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1.5)  # polling pages of a live world
                poller = await poller_pid(url)
                await terminate_poller_lock(url)
                victim = next(w for w in workers if w.pid == poller)
                assert await victim.wait(30) == 1
                index = workers.index(victim)
                workers[index] = await spawn(env, logs[index])
            end = clock.freeze()
            standins.frozen_now = end
            await drained(url, nats, inbox_name, end, workers, partitions=4)
            assert [await w.stop() for w in workers] == [0, 0]
        finally:
            await delete_stream(nats, inbox_name)

    assert_mirrored(await standins.verify())
