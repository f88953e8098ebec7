"""Concurrent requests neither lose nor half-see each other's writes."""

from __future__ import annotations

import asyncio

from tests.our_api.conftest import Api


async def test_concurrent_message_posts_are_all_stored(api: Api) -> None:
    chat_id = await api.chat()
    posts = 400

    async def post(n: int) -> int:
        body = {"sent_at": "2024-05-01T03:00:00Z", "text": f"message {n}"}
        status, _ = await api.call("POST", f"/chats/{chat_id}/messages", json=body)
        return status

    assert await asyncio.gather(*(post(n) for n in range(posts))) == [200] * posts
    _, messages = await api.call("GET", f"/chats/{chat_id}/messages")
    assert sorted(m["text"] for m in messages) == sorted(f"message {n}" for n in range(posts))


async def test_concurrent_creates_of_one_external_id_make_exactly_one_chat(api: Api) -> None:
    body = {"external_id": "same", "started_at": "2024-05-01T03:00:00Z"}
    statuses = await asyncio.gather(*(api.call("POST", "/chats", json=body) for _ in range(30)))
    assert sorted(s for s, _ in statuses) == [201] + [404] * 29
    assert len((await api.call("GET", "/chats"))[1]) == 1


async def test_concurrent_creates_of_one_agent_make_exactly_one_agent(api: Api) -> None:
    body = {"name": "Same Name", "email": "same@x.io"}
    statuses = await asyncio.gather(*(api.call("POST", "/agents", json=body) for _ in range(30)))
    assert sorted(s for s, _ in statuses) == [201] + [500] * 29
    assert len((await api.call("GET", "/agents"))[1]) == 1


async def test_a_write_answered_is_seen_by_the_next_read(api: Api) -> None:
    chat_id = await api.chat()
    for n in range(20):
        body = {"sent_at": "2024-05-01T03:00:00Z", "text": f"m{n}"}
        _, _ = await api.call("POST", f"/chats/{chat_id}/messages", json=body)
        assert len((await api.call("GET", f"/chats/{chat_id}/messages"))[1]) == n + 1
