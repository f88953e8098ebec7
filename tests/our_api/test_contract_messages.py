"""Contract: the message calls of OurAPI, over a real socket."""

from __future__ import annotations

import uuid

from tests.our_api.conftest import Api

SENT = "2024-05-01T03:05:00Z"


async def test_post_message_answers_200_with_an_empty_object_and_no_location(api: Api) -> None:
    chat_id = await api.chat()
    async with api.request(
        "POST", f"/chats/{chat_id}/messages", json={"sent_at": SENT, "text": "hi"}
    ) as r:
        assert r.status == 200
        assert await r.json() == {}
        assert "Location" not in r.headers


async def test_list_messages_returns_the_messages_in_full(api: Api) -> None:
    agent_id = await api.agent()
    chat_id = await api.chat()
    await api.call(
        "POST",
        f"/chats/{chat_id}/messages",
        json={"sent_at": SENT, "text": "hello", "agent_id": agent_id},
    )
    await api.call(
        "POST",
        f"/chats/{chat_id}/messages",
        json={"sent_at": "2024-05-01T03:06:00+01:00", "text": "hey"},
    )
    status, body = await api.call("GET", f"/chats/{chat_id}/messages")
    assert status == 200
    for message in body:
        uuid.UUID(message.pop("message_id"))
    assert body == [
        {
            "chat_id": chat_id,
            "agent_id": agent_id,
            "sent_at": "2024-05-01T03:05:00",
            "text": "hello",
        },
        {"chat_id": chat_id, "agent_id": None, "sent_at": "2024-05-01T03:06:00", "text": "hey"},
    ]


async def test_list_messages_of_an_unknown_chat_answers_404(api: Api) -> None:
    assert await api.call("GET", f"/chats/{uuid.uuid4()}/messages") == (
        404,
        {"detail": "Chat not found"},
    )


async def test_post_message_to_an_unknown_chat_answers_404(api: Api) -> None:
    status, body = await api.call(
        "POST", f"/chats/{uuid.uuid4()}/messages", json={"sent_at": SENT, "text": "hi"}
    )
    assert (status, body) == (404, {"detail": "Chat not found"})


async def test_post_message_with_an_unknown_agent_answers_400(api: Api) -> None:
    chat_id = await api.chat()
    status, body = await api.call(
        "POST",
        f"/chats/{chat_id}/messages",
        json={"sent_at": SENT, "text": "hi", "agent_id": str(uuid.uuid4())},
    )
    assert (status, body) == (400, {"detail": "That agent does not exist."})
    assert await api.call("GET", f"/chats/{chat_id}/messages") == (200, [])


async def test_message_text_is_whitespace_stripped(api: Api) -> None:
    chat_id = await api.chat()
    await api.call(
        "POST", f"/chats/{chat_id}/messages", json={"sent_at": SENT, "text": "  \t ok \n "}
    )
    assert (await api.call("GET", f"/chats/{chat_id}/messages"))[1][0]["text"] == "ok"


async def test_message_text_shorter_than_2_characters_once_stripped_answers_422(api: Api) -> None:
    chat_id = await api.chat()
    status, body = await api.call(
        "POST", f"/chats/{chat_id}/messages", json={"sent_at": SENT, "text": "  x  "}
    )
    assert status == 422
    [error] = body["detail"]
    assert (error["loc"], error["type"]) == (["body", "text"], "string_too_short")
    assert await api.call("GET", f"/chats/{chat_id}/messages") == (200, [])


async def test_the_same_message_posted_twice_is_stored_twice(api: Api) -> None:
    chat_id = await api.chat()
    for _ in range(2):
        await api.call(
            "POST", f"/chats/{chat_id}/messages", json={"sent_at": SENT, "text": "again"}
        )
    _, body = await api.call("GET", f"/chats/{chat_id}/messages")
    assert [m["text"] for m in body] == ["again", "again"]
    assert body[0]["message_id"] != body[1]["message_id"]


async def test_posting_to_an_ended_chat_is_accepted(api: Api) -> None:
    chat_id = await api.chat(ended_at="2024-05-01T03:01:00Z")
    status, _ = await api.call(
        "POST", f"/chats/{chat_id}/messages", json={"sent_at": SENT, "text": "late"}
    )
    assert status == 200
    assert len((await api.call("GET", f"/chats/{chat_id}/messages"))[1]) == 1
