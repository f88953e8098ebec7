"""null_sink: valid-shaped answers at once, nothing stored (for benchmarking a client)."""

from __future__ import annotations

import uuid

from tests.our_api.conftest import StartApi


async def test_null_sink_answers_in_shape_and_stores_nothing(start_api: StartApi) -> None:
    api = await start_api(null_sink=True)
    async with api.request(
        "POST", "/chats", json={"external_id": "1", "started_at": "2024-05-01T03:00:00+02:00"}
    ) as r:
        assert r.status == 201
        chat = await r.json()
        assert r.headers["Location"] == f"/chats/{chat['chat_id']}"
    assert chat["started_at"] == "2024-05-01T03:00:00"
    async with api.request("POST", "/agents", json={"name": "Al", "email": "al@x"}) as r:
        assert r.status == 201
        assert r.headers["Location"].startswith("/agents/")
    chat_id = chat["chat_id"]
    message = {"sent_at": "2024-05-01T03:00:00Z", "text": "hi"}
    assert await api.call("POST", f"/chats/{chat_id}/messages", json=message) == (200, {})
    async with api.request("PATCH", f"/chats/{chat_id}", json={"ended_at": None}) as r:
        assert (r.status, await r.read()) == (204, b"")
    assert await api.call("GET", "/chats") == (200, [])
    assert await api.call("GET", "/agents") == (200, [])
    assert await api.call("GET", f"/chats/{chat_id}/messages") == (200, [])
    assert (await api.call("GET", f"/chats/{chat_id}"))[0] == 404
    assert (await api.call("GET", f"/agents/{uuid.uuid4()}"))[0] == 404


async def test_null_sink_still_validates_bodies(start_api: StartApi) -> None:
    api = await start_api(null_sink=True)
    status, _ = await api.call(
        "POST", f"/chats/{uuid.uuid4()}/messages", json={"sent_at": "x", "text": "hi"}
    )
    assert status == 422
