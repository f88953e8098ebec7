"""Idempotent creates, faults, the truth dump, the write hook and the documents."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from case_store import CaseStoreSettings, create_app
from integration.core.serving import serve_app
from tests.case_store.conftest import StartStore, Store


async def test_a_repeated_idempotency_key_returns_the_first_result_and_creates_nothing(
    store: Store,
) -> None:
    key = {"Idempotency-Key": "local-create-1"}
    first = await store.call("POST", "/cases/", {"name": "first", "customer": 1}, key)
    await store.call("PATCH", f"/cases/{first.body['id']}", {"name": "changed since"})
    again = await store.call("POST", "/cases/", {"name": "second", "customer": 1}, key)
    assert (again.status, again.body) == (201, first.body)
    assert again.headers["Idempotent-Replayed"] == "true"
    truth = (await store.call("GET", "/_standin/truth")).body
    assert len(truth["cases"]) == 1


async def test_a_refused_create_does_not_burn_its_idempotency_key(store: Store) -> None:
    key = {"Idempotency-Key": "k"}
    assert (await store.call("POST", "/cases/", {"customer": 1}, key)).status == 422
    assert (await store.call("POST", "/cases/", {"name": "x", "customer": 1}, key)).status == 201


async def test_error_rate_answers_500_and_writes_nothing(start_store: StartStore) -> None:
    store = await start_store(error_rate=1.0)
    answer = await store.call("POST", "/cases/", {"name": "x", "customer": 1})
    assert (answer.status, answer.body) == (500, {"error": "internal server error"})
    assert (await store.call("GET", "/_standin/truth")).body["cases"] == []


async def test_ambiguous_rate_commits_then_answers_500(start_store: StartStore) -> None:
    store = await start_store(ambiguous_rate=1.0)
    key = {"Idempotency-Key": "amb"}
    answer = await store.call("POST", "/cases/", {"name": "x", "customer": 1}, key)
    assert answer.status == 500
    await store.call("PATCH", "/_standin/faults", {"ambiguous_rate": 0})
    retry = await store.call("POST", "/cases/", {"name": "x", "customer": 1}, key)
    assert retry.status == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert len((await store.call("GET", "/_standin/truth")).body["cases"]) == 1


async def test_faults_switch_at_run_time_and_refuse_bad_values(store: Store) -> None:
    on = await store.call("PATCH", "/_standin/faults", {"error_rate": 1})
    assert on.body["settings"]["error_rate"] == 1
    assert (await store.call("GET", "/cases/")).status == 500
    assert (await store.call("GET", "/_standin/truth")).status == 200  # never faulted
    assert (await store.call("PATCH", "/_standin/faults", {"error_rate": 3})).status == 422
    await store.call("PATCH", "/_standin/faults", {"error_rate": 0})
    assert (await store.call("GET", "/cases/")).status == 200


async def test_requests_are_counted_by_route_and_status(store: Store) -> None:
    row = await store.create()
    await store.call("GET", f"/cases/{row['id']}")
    await store.call("GET", "/cases/999")
    stats = (await store.call("GET", "/_standin/stats")).body
    rows = {(r["method"], r["route"], r["status"]): r["count"] for r in stats["requests"]}
    assert rows == {
        ("POST", "/cases/", 201): 1,
        ("GET", "/cases/{case_id}", 200): 1,
        ("GET", "/cases/{case_id}", 404): 1,
    }
    await store.call("POST", "/_standin/stats/reset")
    assert (await store.call("GET", "/_standin/stats")).body["total"] == 0


async def test_on_write_committed_sees_every_committed_write(store: Store) -> None:
    row = await store.create()
    await store.call("PATCH", f"/cases/{row['id']}", {"notes": "x"})
    await store.call("PATCH", f"/cases/{row['id']}", {"notes": 5})  # 422: nothing committed
    await store.call("DELETE", f"/cases/{row['id']}")
    await store.call("POST", f"/cases/{row['id']}/restore")
    assert store.committed == [(op, row["id"]) for op in ("POST", "PATCH", "DELETE", "RESTORE")]


async def test_the_kill_hook_signals_right_after_the_write_commits(store: Store) -> None:
    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(30)"
    )
    try:
        armed = await store.call("POST", "/_standin/hooks/kill-after?op=PATCH", {"pid": victim.pid})
        assert armed.body["armed"] is True
        row = await store.create()
        assert victim.returncode is None
        await store.call("PATCH", f"/cases/{row['id']}", {"notes": "x"})
        assert await asyncio.wait_for(victim.wait(), 5) == -signal.SIGKILL
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()


async def test_openapi_and_docs_are_served(store: Store) -> None:
    document = await store.call("GET", "/openapi.json")
    assert "/cases/changes" in document.body["paths"]
    assert "CaseFields" in document.body["components"]["schemas"]
    async with store.session.get(store.url + "/docs") as page:
        assert page.status == 200 and "/cases/" in await page.text()


async def test_the_latency_fault_awaits_the_injected_sleep(tmp_path: Path) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = CaseStoreSettings(db=str(tmp_path / "l.db"), latency_ms=40)
    async with (
        serve_app(create_app(settings, sleep=sleep)) as served,
        aiohttp.ClientSession() as s,
        s.get(served.url + "/cases/") as answer,
    ):
        assert answer.status == 200
    assert slept == [0.04]
