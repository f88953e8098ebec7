"""The Intempus sync as a real process (``python run.py intempus``), SIGKILLed by a stand-in right
after one of its writes committed and before it was answered, then restarted: both sides end
the same, no case twice, nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from case_store import CaseStoreSettings
from case_store import create_app as create_store
from integration.pipelines.intempus_cases import IntempusSettings
from integration.pipelines.intempus_cases.links import LOCAL_CREATION
from integration.pipelines.intempus_cases.mapping import differs, from_intempus, from_local
from intempus import IntempusSettings as IntempusStandinSettings
from intempus import create_app as create_intempus
from tests.bigchat_ourapi.processes import ROOT, WorkerProcess, start_worker
from tests.case_store.conftest import Store
from tests.helpers.clocks import ManualClock
from tests.helpers.serving import serve_with_session
from tests.intempus_standin.conftest import KEY, USER, Intempus

from .conftest import Sides

pytestmark = pytest.mark.slow  # the sync as a process, killed and restarted

SIGKILLED = -signal.SIGKILL
CUSTOMER = "/web/v1/customer/6666940/"


@dataclass
class Live(Sides):
    """Both stand-ins on the real clock (the worker is a process on the real clock too), and the
    worker's environment pointed at them."""

    tmp: Path
    env: dict[str, str]

    @property
    def log_path(self) -> Path:
        return self.tmp / "worker.log"

    async def arm(self, side: str, op: str, pid: int) -> None:
        """SIGKILL ``pid`` right after the next committed ``op`` write on ``side``."""
        call = self.intempus.call if side == "intempus" else self.store.call
        answer = await call(
            "POST", f"/_standin/hooks/kill-after?op={op}", {"pid": pid, "signal": "SIGKILL"}, {}
        )
        assert answer.status == 200, answer

    async def fired(self, side: str) -> list[Any]:
        call = self.intempus.call if side == "intempus" else self.store.call
        answer = await call("GET", "/_standin/hooks/kill-after", None, {})
        return list(answer.body["fired"])

    async def command(self, *args: str, limit: float = 60) -> tuple[int, str]:
        """``python run.py intempus <args>`` to the end: (exit status, its output)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "run.py"),
            "intempus",
            *args,
            cwd=str(self.tmp),
            env=self.env_for_process(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), limit)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace")

    def env_for_process(self) -> dict[str, str]:
        return {**os.environ, "LOG_LEVEL": "INFO", **self.env}

    async def settle(self, drains: int = 3) -> None:
        """Drain mode until ``drains`` in a row end drained (exit 0): a change goes out in one
        drain, its echo comes back in the next. The one incomplete drain allowed is one that
        Intempus rate-limited: each process starts with a fresh budget, so a run of restarts
        can spend more than Intempus's 500 a minute; the next drain, a moment later, goes on."""
        clean = attempts = 0
        while clean < drains:
            attempts += 1
            assert attempts <= drains + 6, "no run of clean drains"
            code, out = await self.command("--once")
            if code == 0:
                clean += 1
                continue
            assert "rate-limited (429)" in out, out[-3000:]
            clean = 0
            await asyncio.sleep(2)

    async def verify(self) -> None:
        """``intempus verify`` exits 0. It reads every linked case from Intempus, one request
        each, with the drains before it in the same rate window: a case it could not read for a
        429 is no difference found, so it is asked again a little later."""
        for _ in range(4):
            code, out = await self.command("verify")
            if code == 0:
                return
            differences = [line for line in out.splitlines() if line[:1] in ("i", "l")]
            if not differences or not all("rate-limited (429)" in d for d in differences):
                break
            await asyncio.sleep(5)
        raise AssertionError(out[-3000:])


Spawn = Callable[..., Awaitable[WorkerProcess]]


def standin_app_settings(tmp: Path, **intempus: Any) -> tuple[Any, Any]:
    return (
        IntempusStandinSettings(
            **{"db": str(tmp / "intempus.db"), "users": {USER: KEY}, **intempus}
        ),
        CaseStoreSettings(db=str(tmp / "case_store.db")),
    )


@pytest.fixture
async def start_live(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Live]]]:
    """Both stand-ins in this process on real sockets, on the real clock (the rate limit's
    window must move on while the worker runs)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(poll_interval: float = 0.2, **intempus: Any) -> Live:
            intempus_settings, store_settings = standin_app_settings(tmp_path, **intempus)
            committed: list[tuple[str, int]] = []
            intempus_app = create_intempus(intempus_settings, clock=time.time)
            store_app = create_store(store_settings, clock=time.time)
            iurl, isession = await serve_with_session(stack, intempus_app)
            surl, ssession = await serve_with_session(stack, store_app)
            # The manual clocks drive nothing here: both apps read the real clock.
            intempus_side = Intempus(intempus_app, iurl, isession, ManualClock(0), committed)
            store_side = Store(store_app, surl, ssession, ManualClock(0), [])
            state_db = tmp_path / "intempus-state.db"
            settings = IntempusSettings(
                intempus_url=iurl,
                intempus_user=USER,
                intempus_api_key=KEY,
                case_store_url=surl,
                state_db=state_db,
            )
            env = {
                "INTEMPUS_URL": iurl,
                "INTEMPUS_USER": USER,
                "INTEMPUS_API_KEY": KEY,
                "CASE_STORE_URL": surl,
                "INTEMPUS_STATE_DB": str(state_db),
                "INTEMPUS_POLL_INTERVAL": str(poll_interval),
                "INTEMPUS_FULL_SCAN_INTERVAL": "3600",
                "INTEMPUS_HTTP_TIMEOUT": "2",
                "INTEMPUS_SHUTDOWN_GRACE": "2",
            }
            return Live(intempus_side, store_side, settings, tmp_path, env)

        yield start


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Start workers (``python run.py intempus``) that are killed at teardown, whatever the
    test's outcome."""
    started: list[WorkerProcess] = []

    async def start(live: Live, *args: str) -> WorkerProcess:
        worker = await start_worker(live.env, live.log_path, "intempus", *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


def worker_starts(live: Live) -> int:
    path = live.log_path
    return path.read_text(errors="replace").count("worker starting") if path.exists() else 0


# -- the outcome both sides must reach ---------------------------------------------------------


async def assert_in_step(live: Live, context: str = "") -> tuple[int, int]:
    """Both stand-ins' truths: every live case on one side is one case on the other, equal on
    the synced fields; no create twice (Intempus: one case per ``creation_id`` ``local:<id>``;
    the store: one live row per ``intempus_id``). The case counts (Intempus, store)."""
    remote = await live.intempus_cases()
    local = await live.local_cases()
    where = f"\n{context}" if context else ""

    creations = Counter(
        c["creation_id"] for c in remote if str(c.get("creation_id")).startswith(LOCAL_CREATION)
    )
    twice = {k: n for k, n in creations.items() if n > 1}
    assert not twice, f"created twice in Intempus: {twice}{where}"
    linked = Counter(r["intempus_id"] for r in local if r["intempus_id"] is not None)
    twice = {k: n for k, n in linked.items() if n > 1}
    assert not twice, f"created twice in the case store: {twice}{where}"

    # A case born locally is named by its creation_id in Intempus; one born in Intempus by
    # intempus_id in the store.
    by_local = {r["id"]: r for r in local}
    by_intempus = {r["intempus_id"]: r for r in local if r["intempus_id"] is not None}
    problems: list[str] = []
    matched: set[int] = set()
    for case in remote:
        creation = str(case.get("creation_id") or "")
        if creation.startswith(LOCAL_CREATION):
            row = by_local.get(int(creation.removeprefix(LOCAL_CREATION)))
        else:
            row = by_intempus.get(case["id"])
        if row is None:
            problems.append(f"Intempus {case['id']} ({creation or 'born there'}): not in the store")
            continue
        matched.add(row["id"])
        fields = differs(from_intempus(case), from_local(row))
        if fields:
            problems.append(f"Intempus {case['id']} / local {row['id']}: differ on {fields}")
    for row in local:
        if row["id"] not in matched:
            problems.append(
                f"local {row['id']} (intempus_id {row['intempus_id']}): not in Intempus"
            )
    assert not problems, "\n".join(problems) + where
    return len(remote), len(local)


# -- one kill each, right after a write committed ------------------------------------------------


async def kill_on(live: Live, spawn: Spawn, side: str, op: str) -> None:
    """Start the worker with ``side``'s kill-after hook armed for ``op``; it must die by it."""
    worker = await spawn(live)
    await live.arm(side, op, worker.pid)
    code = await worker.wait(limit=60)
    assert code == SIGKILLED, f"worker exited {code}:\n{worker.log()[-3000:]}"
    [(fired_op, _)] = await live.fired(side)
    assert fired_op == op


async def restart_and_settle(live: Live, spawn: Spawn) -> None:
    """A worker that runs (its start finds the unclean stop) until stopped, then drains."""
    starts = worker_starts(live)
    worker = await spawn(live)
    await worker.wait_started(starts)
    # A few polls (0.2 s apart) and their applies in run mode; the drains below finish the rest.
    await asyncio.sleep(1)
    assert await worker.stop() == 0, worker.log()[-3000:]
    this_life = worker.log().split("worker starting")[-1]
    assert "did not stop cleanly" in this_life
    await live.settle()
    await live.verify()


async def test_killed_right_after_creating_a_local_case_in_intempus_it_exists_there_once(
    start_live: Callable[..., Awaitable[Live]], spawn: Spawn
) -> None:
    live = await start_live()
    made = await live.store.create(name="Cellar", number="C-1", city="Aarhus")

    await kill_on(live, spawn, "intempus", "POST")
    await restart_and_settle(live, spawn)

    assert await assert_in_step(live) == (1, 1)
    [case] = await live.intempus_cases()
    assert case["creation_id"] == f"local:{made['id']}" and case["city"] == "Aarhus"


async def test_killed_right_after_creating_an_intempus_case_locally_it_exists_there_once(
    start_live: Callable[..., Awaitable[Live]], spawn: Spawn
) -> None:
    live = await start_live()
    made = await live.intempus.call(
        "POST", "/_standin/cases", {"name": "Roof", "customer": CUSTOMER, "notes": "tiles"}, {}
    )
    assert made.status == 201, made.raw

    await kill_on(live, spawn, "store", "POST")
    await restart_and_settle(live, spawn)

    assert await assert_in_step(live) == (1, 1)
    [row] = await live.local_cases()
    assert row["intempus_id"] == made.body["id"] and row["notes"] == "tiles"


async def test_killed_right_after_patching_intempus_the_local_edit_is_there_and_stays(
    start_live: Callable[..., Awaitable[Live]], spawn: Spawn
) -> None:
    live = await start_live()
    made = await live.store.create(name="Garage", number="G-1")
    await live.settle(drains=2)
    assert await assert_in_step(live) == (1, 1)
    await live.user_edits_local(made["id"], notes="painted", city="Odense")

    await kill_on(live, spawn, "intempus", "PATCH")
    await restart_and_settle(live, spawn)

    assert await assert_in_step(live) == (1, 1)
    [case] = await live.intempus_cases()
    assert (case["notes"], case["city"]) == ("painted", "Odense")


async def test_killed_right_after_patching_the_store_the_intempus_edit_is_there_and_stays(
    start_live: Callable[..., Awaitable[Live]], spawn: Spawn
) -> None:
    live = await start_live()
    made = await live.intempus.call(
        "POST", "/_standin/cases", {"name": "Shed", "customer": CUSTOMER}, {}
    )
    await live.settle(drains=2)
    assert await assert_in_step(live) == (1, 1)
    await live.user_edits_intempus(made.body["id"], notes="new door", zip_code="8000")

    await kill_on(live, spawn, "store", "PATCH")
    await restart_and_settle(live, spawn)

    assert await assert_in_step(live) == (1, 1)
    [row] = await live.local_cases()
    assert (row["notes"], row["zip_code"]) == ("new door", "8000")
