"""The stand-in's extras: faults, truth, third-party edits and deletes, hooks, documents."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from integration.core.serving import serve_app
from intempus import IntempusSettings, create_app
from tests.intempus_standin.conftest import AUTH, CUSTOMER, Intempus, StartIntempus


async def test_error_rate_answers_500_before_anything_is_written(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(error_rate=1.0)
    answer = await intempus.call("POST", "/web/v1/case/", {"name": "x", "customer": CUSTOMER})
    assert answer.status == 500
    assert answer.body == {
        "error_message": "Sorry, this request could not be processed. Please try again later."
    }
    assert await intempus.truth() == {}
    assert intempus.service.faults.counts["error"] == 1


async def test_ambiguous_rate_commits_the_write_then_answers_500(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(ambiguous_rate=1.0)
    answer = await intempus.call(
        "POST", "/web/v1/case/", {"name": "x", "customer": CUSTOMER, "creation_id": "c1"}
    )
    assert answer.status == 500
    assert [c["creation_id"] for c in (await intempus.truth()).values()] == ["c1"]
    reads = await intempus.call("GET", "/web/v1/case/")
    assert reads.status == 200  # reads are never ambiguous


async def test_html_500_answers_a_page(start_intempus: StartIntempus) -> None:
    intempus = await start_intempus(error_rate=1.0, html_500=True)
    answer = await intempus.call("GET", "/web/v1/case/")
    assert answer.status == 500
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"Incident ID" in answer.raw


async def test_faults_are_switched_at_run_time_and_bad_values_refused(intempus: Intempus) -> None:
    await intempus.switch(error_rate=1.0)
    assert (await intempus.call("GET", "/web/v1/case/")).status == 500
    await intempus.switch(error_rate=0.0)
    assert (await intempus.call("GET", "/web/v1/case/")).status == 200
    bad = await intempus.call("PATCH", "/_standin/faults", {"error_rate": 2}, headers={})
    assert bad.status == 422
    unknown = await intempus.call("PATCH", "/_standin/faults", {"nope": 1}, headers={})
    assert unknown.status == 422


async def test_standin_routes_are_neither_counted_nor_faulted(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(error_rate=1.0, rate_per_minute=1)
    for _ in range(3):
        assert (await intempus.call("GET", "/_standin/truth", headers={})).status == 200
    assert intempus.service.stats.total == 0


async def test_request_counts_are_kept_per_method_route_and_status(intempus: Intempus) -> None:
    case = await intempus.create()
    await intempus.call("GET", case["resource_uri"])
    await intempus.call("GET", "/web/v1/case/1/")
    stats = (await intempus.call("GET", "/_standin/stats", headers={})).body
    rows = {(r["method"], r["route"], r["status"]): r["count"] for r in stats["requests"]}
    assert rows == {
        ("POST", "/web/v1/case/", 201): 1,
        ("GET", "/web/v1/case/{case_id}/", 200): 1,
        ("GET", "/web/v1/case/{case_id}/", 404): 1,
    }
    await intempus.call("POST", "/_standin/stats/reset", headers={})
    assert (await intempus.call("GET", "/_standin/stats", headers={})).body["total"] == 0


async def test_a_touch_is_a_third_party_edit_with_a_new_lt(intempus: Intempus) -> None:
    case = await intempus.create()
    page = await intempus.call("GET", "/web/v1/case/")
    touched = await intempus.call(
        "POST", f"/_standin/cases/{case['id']}/touch", {"name": "edited in the UI"}, headers={}
    )
    assert touched.status == 200 and touched.body["logical_timestamp"] > page.lt
    feed = await intempus.call("GET", f"/web/v1/case/?logical_timestamp__gt={page.lt}")
    assert [c["name"] for c in feed.body["objects"]] == ["edited in the UI"]
    empty_touch = await intempus.call("POST", f"/_standin/cases/{case['id']}/touch", headers={})
    assert empty_touch.body["logical_timestamp"] > touched.body["logical_timestamp"]


async def test_a_deletion_outside_the_api_ignores_work_reports_and_leaves_no_trace(
    intempus: Intempus,
) -> None:
    case = await intempus.create()
    await intempus.call(
        "PUT", f"/_standin/cases/{case['id']}/work_reports", {"count": 1}, headers={}
    )
    page = await intempus.call("GET", "/web/v1/case/")
    gone = await intempus.call("DELETE", f"/_standin/cases/{case['id']}", headers={})
    assert gone.status == 204
    assert (await intempus.call("GET", case["resource_uri"])).status == 404
    feed = await intempus.call("GET", f"/web/v1/case/?logical_timestamp__gt={page.lt}")
    assert feed.body["objects"] == []
    again = await intempus.call("DELETE", f"/_standin/cases/{case['id']}", headers={})
    assert again.status == 404


async def test_a_user_created_case_shows_its_real_lt(intempus: Intempus) -> None:
    answer = await intempus.call(
        "POST", "/_standin/cases", {"name": "from the UI", "customer": CUSTOMER}, headers={}
    )
    assert answer.status == 201
    assert (
        answer.body["logical_timestamp"]
        == (await intempus.truth())[answer.body["id"]]["logical_timestamp"]
    )


async def test_on_write_committed_is_called_after_each_commit_with_op_and_id(
    intempus: Intempus,
) -> None:
    case = await intempus.create()
    await intempus.call("PATCH", case["resource_uri"], {"notes": "x"})
    await intempus.call("PUT", case["resource_uri"], {"notes": "y"})
    await intempus.call("POST", f"/_standin/cases/{case['id']}/touch", headers={})
    await intempus.call("DELETE", case["resource_uri"])
    await intempus.call("DELETE", case["resource_uri"])  # 404: nothing committed
    assert intempus.committed == [
        (op, case["id"]) for op in ("POST", "PATCH", "PUT", "TOUCH", "DELETE")
    ]


async def test_the_kill_hook_signals_the_process_right_after_the_write_commits(
    intempus: Intempus,
) -> None:
    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(30)"
    )
    try:
        armed = await intempus.call(
            "POST", "/_standin/hooks/kill-after?op=POST", {"pid": victim.pid}, headers={}
        )
        assert armed.body["armed"] is True
        await intempus.call("PATCH", "/web/v1/case/1/", {})  # no commit: not fired
        assert victim.returncode is None
        case = await intempus.create()
        assert await asyncio.wait_for(victim.wait(), 5) == -signal.SIGKILL
        shown = await intempus.call("GET", "/_standin/hooks/kill-after", headers={})
        assert shown.body == {
            "armed": False, "op": None, "pid": None, "fired": [["POST", case["id"]]],
        }  # fmt: skip
        assert case["id"] in await intempus.truth()  # committed before the signal
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()


async def test_late_commits_become_visible_below_a_header_already_served(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(lt_late_commit=1.0)
    # An ordinary write leaves a hole in the LT sequence (a transaction still in flight);
    # the next write, with the fault at 1.0, commits into that hole, below the header served.
    first = await intempus.create()
    page = await intempus.call("GET", "/web/v1/case/")
    second = await intempus.create()
    missed = await intempus.call("GET", f"/web/v1/case/?logical_timestamp__gt={page.lt}")
    assert missed.body["objects"] == []  # the incremental feed cannot see it
    truth = await intempus.truth()
    assert truth[second["id"]]["logical_timestamp"] < page.lt
    assert truth[first["id"]]["logical_timestamp"] == page.lt
    assert intempus.service.faults.counts["late_lt"] == 1
    third = await intempus.create()  # no hole left at or below a served header: on time
    seen = await intempus.call("GET", f"/web/v1/case/?logical_timestamp__gt={page.lt}")
    assert [c["id"] for c in seen.body["objects"]] == [third["id"]]


async def test_sample_cases_follow_from_the_seed(
    start_intempus: StartIntempus, tmp_path: object
) -> None:
    a = await start_intempus(cases=5, seed=3, db=":memory:")
    b = await start_intempus(cases=5, seed=3, db=":memory:")
    c = await start_intempus(cases=5, seed=4, db=":memory:")
    truth_a, truth_b, truth_c = await a.truth(), await b.truth(), await c.truth()
    assert truth_a == truth_b and len(truth_a) == 5
    assert [x["name"] for x in truth_a.values()] != [x["name"] for x in truth_c.values()]


async def test_openapi_and_docs_are_served_without_auth(intempus: Intempus) -> None:
    document = await intempus.call("GET", "/openapi.json", headers={})
    assert document.status == 200
    assert "/web/v1/case/{id}/" in document.body["paths"]
    assert "CaseOut" in document.body["components"]["schemas"]
    page = await intempus.call("GET", "/docs", headers={})
    assert page.status == 200 and b"/web/v1/case/" in page.raw


async def test_the_latency_fault_awaits_the_injected_sleep(tmp_path: Path) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = IntempusSettings(db=str(tmp_path / "l.db"), latency_ms=250)
    async with serve_app(create_app(settings, sleep=sleep)) as served, aiohttp.ClientSession() as s:
        async with s.get(served.url + "/web/v1/case/", headers=AUTH) as answer:
            assert answer.status == 200
        async with s.get(served.url + "/_standin/truth") as answer:
            assert answer.status == 200  # not delayed
    assert slept == [0.25]
