"""Contract: the agent calls of OurAPI, over a real socket."""

from __future__ import annotations

import uuid

from tests.our_api.conftest import Api


async def test_post_agent_answers_201_with_the_agent_and_a_location(api: Api) -> None:
    async with api.request(
        "POST", "/agents", json={"name": "Bo Brown", "email": "bo@example.com"}
    ) as r:
        assert r.status == 201
        body = await r.json()
        assert r.headers["Location"] == f"/agents/{body['agent_id']}"
    uuid.UUID(body["agent_id"])
    assert (body["name"], body["email"]) == ("Bo Brown", "bo@example.com")


async def test_agent_name_and_email_are_whitespace_stripped(api: Api) -> None:
    status, body = await api.call("POST", "/agents", json={"name": "  Cy  ", "email": "\tcy@x.io "})
    assert status == 201
    assert (body["name"], body["email"]) == ("Cy", "cy@x.io")


async def test_agent_name_shorter_than_2_characters_answers_422(api: Api) -> None:
    status, body = await api.call("POST", "/agents", json={"name": " C ", "email": "c@x.io"})
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["body", "name"]]


async def test_agent_email_shorter_than_2_characters_answers_422(api: Api) -> None:
    status, body = await api.call("POST", "/agents", json={"name": "Cy", "email": " c "})
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["body", "email"]]


async def test_a_duplicate_agent_name_answers_a_bare_plain_text_500(api: Api) -> None:
    await api.agent("Dee", "dee@x.io")
    async with api.request("POST", "/agents", json={"name": "Dee", "email": "other@x.io"}) as r:
        assert r.status == 500
        assert r.content_type == "text/plain"
        assert "detail" not in await r.text()
    assert len((await api.call("GET", "/agents"))[1]) == 1


async def test_a_duplicate_agent_email_answers_a_bare_plain_text_500(api: Api) -> None:
    await api.agent("Dee", "dee@x.io")
    async with api.request("POST", "/agents", json={"name": "Other", "email": "dee@x.io"}) as r:
        assert r.status == 500
        assert r.content_type == "text/plain"
    assert len((await api.call("GET", "/agents"))[1]) == 1


async def test_get_agent_answers_200_with_the_agent(api: Api) -> None:
    agent_id = await api.agent("Eve", "eve@x.io")
    assert await api.call("GET", f"/agents/{agent_id}") == (
        200,
        {"agent_id": agent_id, "name": "Eve", "email": "eve@x.io"},
    )


async def test_get_an_unknown_agent_answers_404(api: Api) -> None:
    assert await api.call("GET", f"/agents/{uuid.uuid4()}") == (404, {"detail": "Agent not found"})


async def test_list_agents_without_filters_returns_all_agents(api: Api) -> None:
    ids = [await api.agent(f"Agent {n}", f"a{n}@x.io") for n in range(3)]
    status, body = await api.call("GET", "/agents")
    assert status == 200
    assert [a["agent_id"] for a in body] == ids


async def test_list_agents_filters_by_name(api: Api) -> None:
    await api.agent("Fay", "fay@x.io")
    gus = await api.agent("Gus", "gus@x.io")
    _, body = await api.call("GET", "/agents", params={"name": "Gus"})
    assert [a["agent_id"] for a in body] == [gus]


async def test_list_agents_filters_by_email(api: Api) -> None:
    fay = await api.agent("Fay", "fay@x.io")
    await api.agent("Gus", "gus@x.io")
    _, body = await api.call("GET", "/agents", params={"email": "fay@x.io"})
    assert [a["agent_id"] for a in body] == [fay]


async def test_list_agents_combines_both_filters(api: Api) -> None:
    fay = await api.agent("Fay", "fay@x.io")
    await api.agent("Gus", "gus@x.io")
    both = {"name": "Fay", "email": "fay@x.io"}
    crossed = {"name": "Fay", "email": "gus@x.io"}
    assert [a["agent_id"] for a in (await api.call("GET", "/agents", params=both))[1]] == [fay]
    assert await api.call("GET", "/agents", params=crossed) == (200, [])
