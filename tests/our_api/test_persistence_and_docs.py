"""Data survives a restart on the same file; the OpenAPI document and the docs page are served."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from integration.core.serving import serve_app
from our_api import OurApiSettings, create_app
from tests.our_api.conftest import Api, StartApi


async def test_data_survives_an_app_restart_on_the_same_file(tmp_path: Path) -> None:
    settings = OurApiSettings(db=str(tmp_path / "kept.db"))
    first_app = create_app(settings)
    async with serve_app(first_app) as served, aiohttp.ClientSession() as session:
        first = Api(first_app, served.url, session)
        agent_id = await first.agent()
        chat_id = await first.chat("77", agent_id=agent_id)
        await first.call(
            "POST",
            f"/chats/{chat_id}/messages",
            json={"sent_at": "2024-05-01T03:00:00Z", "text": "kept"},
        )
    second_app = create_app(settings)
    async with serve_app(second_app) as served, aiohttp.ClientSession() as session:
        second = Api(second_app, served.url, session)
        assert (await second.call("GET", f"/agents/{agent_id}"))[0] == 200
        _, chats = await second.call("GET", "/chats", params={"external_id": "77"})
        assert [c["chat_id"] for c in chats] == [chat_id]
        _, messages = await second.call("GET", f"/chats/{chat_id}/messages")
        assert [m["text"] for m in messages] == ["kept"]


async def test_an_in_memory_database_works(start_api: StartApi) -> None:
    api = await start_api(db=":memory:")
    chat_id = await api.chat()
    assert (await api.call("GET", f"/chats/{chat_id}"))[0] == 200


async def test_openapi_json_documents_every_contract_call(api: Api) -> None:
    status, document = await api.call("GET", "/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.1")
    operations = {(m.upper(), p) for p, methods in document["paths"].items() for m in methods}
    assert operations == {
        ("POST", "/chats"),
        ("GET", "/chats"),
        ("GET", "/chats/{chat_id}"),
        ("PATCH", "/chats/{chat_id}"),
        ("POST", "/chats/{chat_id}/messages"),
        ("GET", "/chats/{chat_id}/messages"),
        ("POST", "/agents"),
        ("GET", "/agents/{agent_id}"),
        ("GET", "/agents"),
    }
    schemas = document["components"]["schemas"]
    assert {"ChatCreate", "MessageCreate", "AgentCreate"} <= set(schemas)
    assert set(schemas["MessageCreate"]["required"]) == {"sent_at", "text"}
    assert "201" in document["paths"]["/chats"]["post"]["responses"]
    assert "204" in document["paths"]["/chats/{chat_id}"]["patch"]["responses"]


async def test_docs_is_a_self_contained_html_page(api: Api) -> None:
    async with api.request("GET", "/docs") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert "/chats/{chat_id}/messages" in page
    assert "http://" not in page and "https://" not in page
