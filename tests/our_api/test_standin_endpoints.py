"""The stand-in's additions under /_standin/: statistics and runtime fault settings."""

from __future__ import annotations

from our_api import STATS
from tests.our_api.conftest import Api, StartApi


async def test_stats_count_requests_by_method_route_template_and_status(api: Api) -> None:
    chat_id = await api.chat()
    await api.call("GET", f"/chats/{chat_id}")
    await api.call("GET", "/chats/00000000-0000-0000-0000-000000000000")
    status, stats = await api.call("GET", "/_standin/stats")
    assert status == 200
    assert stats["total"] == 3
    assert sorted(
        (r["method"], r["route"], r["status"], r["count"]) for r in stats["requests"]
    ) == [
        ("GET", "/chats/{chat_id}", 200, 1),
        ("GET", "/chats/{chat_id}", 404, 1),
        ("POST", "/chats", 201, 1),
    ]
    assert api.app[STATS].count("GET", "/chats/{chat_id}") == 2


async def test_stats_do_not_count_standin_requests(api: Api) -> None:
    for _ in range(3):
        await api.call("GET", "/_standin/stats")
    await api.call("GET", "/_standin/faults")
    assert (await api.call("GET", "/_standin/stats"))[1] == {"total": 0, "requests": []}


async def test_stats_reset_zeroes_the_counts(api: Api) -> None:
    await api.call("GET", "/chats")
    status, _ = await api.call("POST", "/_standin/stats/reset")
    assert status == 204
    assert api.app[STATS].total == 0


async def test_stats_count_injected_faults_with_their_status(start_api: StartApi) -> None:
    api = await start_api(error_rate=1.0)
    await api.call("GET", "/agents")
    assert api.app[STATS].snapshot()["requests"] == [
        {"method": "GET", "route": "/agents", "status": 500, "count": 1}
    ]


async def test_patch_faults_changes_the_fault_settings_at_run_time(start_api: StartApi) -> None:
    api = await start_api(seed=3)
    status, view = await api.call("PATCH", "/_standin/faults", json={"error_rate": 1.0})
    assert status == 200
    assert view["settings"]["error_rate"] == 1.0
    assert (await api.call("GET", "/chats"))[0] == 500
    await api.call("PATCH", "/_standin/faults", json={"error_rate": 0})
    assert (await api.call("GET", "/chats"))[0] == 200


async def test_patch_faults_keeps_the_fields_left_out(start_api: StartApi) -> None:
    api = await start_api(latency_ms=5, rate_limit=100.0)
    _, view = await api.call("PATCH", "/_standin/faults", json={"error_rate": 0.25})
    assert view["settings"] == {
        "error_rate": 0.25,
        "ambiguous_rate": 0.0,
        "latency_ms": 5.0,
        "rate_limit": 100.0,
        "late_landing_rate": 0.0,
        "late_landing_s": 1.0,
        "late_landing_paths": None,
    }


async def test_patch_faults_refuses_a_rate_out_of_range(api: Api) -> None:
    status, body = await api.call("PATCH", "/_standin/faults", json={"error_rate": 1.5})
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "error_rate"]
    assert (await api.call("GET", "/_standin/faults"))[1]["settings"]["error_rate"] == 0.0


async def test_get_faults_lists_the_injected_faults(start_api: StartApi) -> None:
    api = await start_api(error_rate=1.0)
    await api.call("GET", "/agents")
    _, view = await api.call("GET", "/_standin/faults")
    assert view["counts"] == {"error": 1}
    assert [(f["kind"], f["method"], f["path"]) for f in view["faults"]] == [
        ("error", "GET", "/agents")
    ]
