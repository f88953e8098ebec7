"""Contract: the chat calls of OurAPI, over a real socket."""

from __future__ import annotations

import uuid

from tests.our_api.conftest import Api

START = "2024-05-01T03:00:00Z"


async def test_post_chat_answers_201_with_the_chat_and_a_location(api: Api) -> None:
    async with api.request("POST", "/chats", json={"external_id": "7", "started_at": START}) as r:
        assert r.status == 201
        body = await r.json()
        assert r.headers["Location"] == f"/chats/{body['chat_id']}"
    uuid.UUID(body["chat_id"])
    assert body == {
        "chat_id": body["chat_id"],
        "external_id": "7",
        "started_at": "2024-05-01T03:00:00",
        "ended_at": None,
        "agent_id": None,
    }


async def test_post_chat_with_an_agent_stores_the_agent(api: Api) -> None:
    agent_id = await api.agent()
    chat_id = await api.chat(agent_id=agent_id)
    status, body = await api.call("GET", f"/chats/{chat_id}")
    assert status == 200
    assert body["agent_id"] == agent_id


async def test_post_chat_with_an_unknown_agent_answers_400(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/chats",
        json={"external_id": "1", "started_at": START, "agent_id": str(uuid.uuid4())},
    )
    assert (status, body) == (400, {"detail": "That agent does not exist."})
    assert await api.call("GET", "/chats") == (200, [])


async def test_post_chat_with_a_duplicate_external_id_answers_404(api: Api) -> None:
    await api.chat("42")
    status, body = await api.call("POST", "/chats", json={"external_id": "42", "started_at": START})
    assert (status, body) == (404, {"detail": "A chat with that external ID already exists."})
    assert len((await api.call("GET", "/chats"))[1]) == 1


async def test_external_id_must_be_a_json_string(api: Api) -> None:
    status, body = await api.call("POST", "/chats", json={"external_id": 42, "started_at": START})
    assert status == 422
    [error] = body["detail"]
    assert error["loc"] == ["body", "external_id"]
    assert error["type"] == "string_type"
    assert isinstance(error["msg"], str)


async def test_post_chat_without_started_at_answers_422_with_a_detail_list(api: Api) -> None:
    status, body = await api.call("POST", "/chats", json={"external_id": "1"})
    assert status == 422
    assert body["detail"] == [
        {
            "type": "missing",
            "loc": ["body", "started_at"],
            "msg": "Field required",
            "input": {"external_id": "1"},
        }
    ]


async def test_malformed_json_answers_422(api: Api) -> None:
    status, body = await api.call(
        "POST", "/chats", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 422
    assert body["detail"][0]["type"] == "json_invalid"
    assert body["detail"][0]["loc"][0] == "body"


async def test_an_offset_is_dropped_not_converted(api: Api) -> None:
    chat_id = await api.chat(
        started_at="2024-05-01T03:00:00+02:00", ended_at="2024-05-01T04:30:00-05:00"
    )
    _, body = await api.call("GET", f"/chats/{chat_id}")
    assert body["started_at"] == "2024-05-01T03:00:00"
    assert body["ended_at"] == "2024-05-01T04:30:00"


async def test_ended_at_before_started_at_is_accepted(api: Api) -> None:
    chat_id = await api.chat(started_at="2024-05-01T10:00:00Z", ended_at="2024-05-01T09:00:00Z")
    _, body = await api.call("GET", f"/chats/{chat_id}")
    assert (body["started_at"], body["ended_at"]) == ("2024-05-01T10:00:00", "2024-05-01T09:00:00")


async def test_patch_chat_answers_204_with_an_empty_body(api: Api) -> None:
    chat_id = await api.chat()
    async with api.request(
        "PATCH", f"/chats/{chat_id}", json={"ended_at": "2024-05-01T05:00:00Z"}
    ) as r:
        assert r.status == 204
        assert await r.read() == b""


async def test_patch_chat_changes_only_the_fields_sent(api: Api) -> None:
    agent_id = await api.agent()
    chat_id = await api.chat(ended_at="2024-05-01T06:00:00Z")
    await api.call("PATCH", f"/chats/{chat_id}", json={"agent_id": agent_id})
    _, body = await api.call("GET", f"/chats/{chat_id}")
    assert body["agent_id"] == agent_id
    assert body["started_at"] == "2024-05-01T03:00:00"
    assert body["ended_at"] == "2024-05-01T06:00:00"


async def test_patch_chat_can_set_ended_at_back_to_null(api: Api) -> None:
    chat_id = await api.chat(ended_at="2024-05-01T06:00:00Z")
    status, _ = await api.call("PATCH", f"/chats/{chat_id}", json={"ended_at": None})
    assert status == 204
    assert (await api.call("GET", f"/chats/{chat_id}"))[1]["ended_at"] is None


async def test_patch_chat_drops_the_offset(api: Api) -> None:
    chat_id = await api.chat()
    await api.call("PATCH", f"/chats/{chat_id}", json={"started_at": "2024-06-01T01:00:00+09:00"})
    assert (await api.call("GET", f"/chats/{chat_id}"))[1]["started_at"] == "2024-06-01T01:00:00"


async def test_patch_an_unknown_chat_answers_404(api: Api) -> None:
    status, body = await api.call("PATCH", f"/chats/{uuid.uuid4()}", json={"ended_at": START})
    assert (status, body) == (404, {"detail": "Chat not found"})


async def test_patch_chat_with_an_unknown_agent_answers_400(api: Api) -> None:
    chat_id = await api.chat()
    status, body = await api.call(
        "PATCH", f"/chats/{chat_id}", json={"agent_id": str(uuid.uuid4())}
    )
    assert (status, body) == (400, {"detail": "That agent does not exist."})
    assert (await api.call("GET", f"/chats/{chat_id}"))[1]["agent_id"] is None


async def test_get_chat_answers_200_with_the_chat(api: Api) -> None:
    chat_id = await api.chat("9")
    status, body = await api.call("GET", f"/chats/{chat_id}")
    assert status == 200
    assert (body["chat_id"], body["external_id"]) == (chat_id, "9")


async def test_get_an_unknown_chat_answers_404(api: Api) -> None:
    assert await api.call("GET", f"/chats/{uuid.uuid4()}") == (404, {"detail": "Chat not found"})


async def test_a_malformed_uuid_in_the_path_answers_422(api: Api) -> None:
    status, body = await api.call("GET", "/chats/not-a-uuid")
    assert status == 422
    assert body["detail"][0]["loc"] == ["path", "chat_id"]
    assert body["detail"][0]["type"] == "uuid_parsing"


async def test_list_chats_without_a_filter_returns_all_chats(api: Api) -> None:
    ids = [await api.chat(str(n)) for n in range(3)]
    status, body = await api.call("GET", "/chats")
    assert status == 200
    assert [chat["chat_id"] for chat in body] == ids


async def test_list_chats_filters_by_external_id(api: Api) -> None:
    await api.chat("1")
    wanted = await api.chat("2")
    status, body = await api.call("GET", "/chats", params={"external_id": "2"})
    assert status == 200
    assert [chat["chat_id"] for chat in body] == [wanted]


async def test_list_chats_with_an_unmatched_filter_returns_an_empty_list(api: Api) -> None:
    await api.chat("1")
    assert await api.call("GET", "/chats", params={"external_id": "nope"}) == (200, [])


async def test_an_unknown_route_answers_404_json(api: Api) -> None:
    assert await api.call("GET", "/nowhere") == (404, {"detail": "Not Found"})
