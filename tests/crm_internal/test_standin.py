"""Idempotent creates, faults, the records dump, the write hook and the documents."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from crm_internal import CrmInternalSettings, create_app
from integration.core.serving import serve_app
from tests.crm_internal.conftest import Internal, StartInternal


async def test_a_repeated_idempotency_key_returns_the_first_result_and_creates_nothing(
    internal: Internal,
) -> None:
    key = {"Idempotency-Key": "hubspot-main:contact:901"}
    first = await internal.call("POST", "/contacts/", {"last_name": "first"}, key)
    await internal.call("PATCH", f"/contacts/{first.body['id']}", {"last_name": "changed since"})
    again = await internal.call("POST", "/contacts/", {"last_name": "second"}, key)
    assert (again.status, again.body) == (201, first.body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len((await internal.records())["contacts"]) == 1


async def test_a_refused_create_does_not_burn_its_idempotency_key(internal: Internal) -> None:
    key = {"Idempotency-Key": "k"}
    assert (await internal.call("POST", "/companies/", {}, key)).status == 422
    assert (await internal.call("POST", "/companies/", {"name": "x"}, key)).status == 201


async def test_error_rate_answers_500_and_writes_nothing(start_internal: StartInternal) -> None:
    internal = await start_internal(error_rate=1.0)
    answer = await internal.call("POST", "/companies/", {"name": "x"})
    assert (answer.status, answer.body) == (500, {"error": "internal server error"})
    assert (await internal.records())["companies"] == []


async def test_ambiguous_rate_commits_then_answers_500(start_internal: StartInternal) -> None:
    internal = await start_internal(ambiguous_rate=1.0)
    key = {"Idempotency-Key": "amb"}
    answer = await internal.call("POST", "/contacts/", {"last_name": "x"}, key)
    assert answer.status == 500
    assert [r["last_name"] for r in (await internal.records())["contacts"]] == ["x"]
    await internal.call("PATCH", "/_standin/faults", {"ambiguous_rate": 0})
    retry = await internal.call("POST", "/contacts/", {"last_name": "x"}, key)
    assert retry.status == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert len((await internal.records())["contacts"]) == 1


async def test_faults_switch_at_run_time_and_refuse_bad_values(internal: Internal) -> None:
    on = await internal.call("PATCH", "/_standin/faults", {"error_rate": 1})
    assert on.body["settings"]["error_rate"] == 1
    assert (await internal.call("GET", "/changes")).status == 500
    assert (await internal.call("GET", "/_standin/records")).status == 200  # never faulted
    assert (await internal.call("PATCH", "/_standin/faults", {"error_rate": 3})).status == 422
    await internal.call("PATCH", "/_standin/faults", {"error_rate": 0})
    assert (await internal.call("GET", "/contacts/")).status == 200


async def test_requests_are_counted_by_route_and_status(internal: Internal) -> None:
    row = await internal.contact()
    await internal.call("GET", f"/contacts/{row['id']}")
    await internal.call("GET", "/companies/999")
    await internal.feed()
    stats = (await internal.call("GET", "/_standin/stats")).body
    rows = {(r["method"], r["route"], r["status"]): r["count"] for r in stats["requests"]}
    assert rows == {
        ("POST", "/contacts/", 201): 1,
        ("GET", "/contacts/{record_id}", 200): 1,
        ("GET", "/companies/{record_id}", 404): 1,
        ("GET", "/changes", 200): 1,
    }
    await internal.call("POST", "/_standin/stats/reset")
    assert (await internal.call("GET", "/_standin/stats")).body["total"] == 0


async def test_records_holds_every_row_of_both_objects_with_tombstones(
    internal: Internal,
) -> None:
    company = await internal.company()
    contact = await internal.contact()
    await internal.call("DELETE", f"/contacts/{contact['id']}")
    truth = await internal.records()
    assert truth["high_water"] == 3
    assert [r["id"] for r in truth["companies"]] == [company["id"]]
    assert [(r["id"], r["deleted"]) for r in truth["contacts"]] == [(contact["id"], True)]


async def test_on_write_committed_sees_every_committed_write(internal: Internal) -> None:
    row = await internal.contact()
    path = f"/contacts/{row['id']}"
    await internal.call("PATCH", path, {"title": "x"})
    await internal.call("PATCH", path, {"email": "nope"})  # 422: nothing committed
    await internal.call("DELETE", path)
    await internal.call("POST", path + "/restore")
    assert internal.committed == [(op, row["id"]) for op in ("POST", "PATCH", "DELETE", "RESTORE")]


async def test_openapi_and_docs_are_served(internal: Internal) -> None:
    document = await internal.call("GET", "/openapi.json")
    assert {"/changes", "/contacts/", "/companies/{id}"} <= set(document.body["paths"])
    assert {"ContactFields", "CompanyRow", "Feed"} <= set(document.body["components"]["schemas"])
    async with internal.session.get(internal.url + "/docs") as page:
        assert page.status == 200 and "/contacts/" in await page.text()


async def test_the_latency_fault_awaits_the_injected_sleep(tmp_path: Path) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = CrmInternalSettings(db=str(tmp_path / "l.db"), latency_ms=40)
    async with (
        serve_app(create_app(settings, sleep=sleep)) as served,
        aiohttp.ClientSession() as s,
        s.get(served.url + "/changes") as answer,
    ):
        assert answer.status == 200
    assert slept == [0.04]


async def test_the_kill_hook_signals_right_after_the_write_commits(internal: Internal) -> None:
    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(30)"
    )
    try:
        armed = await internal.call(
            "POST", "/_standin/hooks/kill-after?op=DELETE", {"pid": victim.pid}
        )
        assert armed.body["armed"] is True
        row = await internal.company()
        assert victim.returncode is None
        await internal.call("DELETE", f"/companies/{row['id']}")
        assert await asyncio.wait_for(victim.wait(), 5) == -signal.SIGKILL
        assert (await internal.records())["companies"][0]["deleted"] is True
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()
