"""Each fault flag does what it says; all are off by default."""

from __future__ import annotations

import time

from our_api import FAULTS
from tests.our_api.conftest import Api, StartApi

MESSAGE = {"sent_at": "2024-05-01T03:00:00Z", "text": "hello"}


async def _faults_off(api: Api) -> None:
    status, _ = await api.call(
        "PATCH",
        "/_standin/faults",
        json={"error_rate": 0, "ambiguous_rate": 0, "latency_ms": 0, "rate_limit": None},
    )
    assert status == 200


async def test_error_rate_1_answers_every_request_500_and_stores_nothing(
    start_api: StartApi,
) -> None:
    api = await start_api(error_rate=1.0, seed=1)
    async with api.request(
        "POST", "/chats", json={"external_id": "1", "started_at": "2024-05-01T00:00:00Z"}
    ) as r:
        assert r.status == 500
        assert r.content_type == "text/plain"
    assert (await api.call("GET", "/chats"))[0] == 500
    assert [f.kind for f in api.app[FAULTS]] == ["error", "error"]
    await _faults_off(api)
    assert await api.call("GET", "/chats") == (200, [])


async def test_error_rate_half_fails_some_requests_the_same_way_for_the_same_seed(
    start_api: StartApi,
) -> None:
    patterns = []
    for _ in range(2):
        api = await start_api(db=":memory:", error_rate=0.5, seed=7)
        patterns.append([(await api.call("GET", "/agents"))[0] for _ in range(40)])
    assert patterns[0] == patterns[1]
    assert set(patterns[0]) == {200, 500}


async def test_ambiguous_rate_1_commits_the_write_then_answers_500(start_api: StartApi) -> None:
    api = await start_api(seed=1)
    chat_id = await api.chat()
    await api.call("PATCH", "/_standin/faults", json={"ambiguous_rate": 1.0})
    async with api.request("POST", f"/chats/{chat_id}/messages", json=MESSAGE) as r:
        assert r.status == 500
        assert r.content_type == "text/plain"
    # Reads are not writes: they are not made ambiguous, and they show the write was stored.
    status, messages = await api.call("GET", f"/chats/{chat_id}/messages")
    assert status == 200
    assert [m["text"] for m in messages] == ["hello"]
    assert [(f.kind, f.method) for f in api.app[FAULTS]] == [("ambiguous", "POST")]


async def test_ambiguous_rate_does_not_touch_refused_writes(start_api: StartApi) -> None:
    api = await start_api(ambiguous_rate=1.0, seed=1)
    status, _ = await api.call("POST", "/chats", json={"external_id": 5})
    assert status == 422
    assert len(api.app[FAULTS]) == 0


async def test_latency_ms_delays_each_answer_by_at_least_that(start_api: StartApi) -> None:
    api = await start_api(latency_ms=150)
    started = time.perf_counter()
    assert (await api.call("GET", "/chats"))[0] == 200
    assert time.perf_counter() - started >= 0.15
    assert [f.kind for f in api.app[FAULTS]] == ["latency"]


async def test_rate_limit_answers_429_with_retry_after_beyond_the_rate(start_api: StartApi) -> None:
    api = await start_api(rate_limit=1.0)
    assert (await api.call("GET", "/chats"))[0] == 200
    async with api.request("GET", "/chats") as r:
        assert r.status == 429
        retry_after = r.headers["Retry-After"]
        assert retry_after.isdigit() and int(retry_after) >= 1
        assert isinstance((await r.json())["detail"], str)
    assert [f.kind for f in api.app[FAULTS]] == ["rate_limit"]


async def test_faults_are_off_by_default(api: Api) -> None:
    chat_id = await api.chat()
    for _ in range(30):
        assert (await api.call("POST", f"/chats/{chat_id}/messages", json=MESSAGE))[0] == 200
    assert len(api.app[FAULTS]) == 0


async def test_standin_endpoints_are_never_faulted(start_api: StartApi) -> None:
    api = await start_api(error_rate=1.0, ambiguous_rate=1.0, rate_limit=1.0)
    for _ in range(5):
        assert (await api.call("GET", "/_standin/stats"))[0] == 200
        assert (await api.call("GET", "/_standin/faults"))[0] == 200
    assert len(api.app[FAULTS]) == 0
