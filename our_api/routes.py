"""The contract's HTTP handlers: parse and validate, call the store, answer in the contract's shape.

Store refusals (``errors.StoreError``) are turned into answers by ``middleware.errors_middleware``,
so each handler only describes the successful path.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from our_api.errors import validation_422
from our_api.keys import STORE
from our_api.models import Agent, AgentCreate, Chat, ChatCreate, ChatUpdate, Message, MessageCreate

M = TypeVar("M", bound=BaseModel)

_UUID = TypeAdapter(UUID)
_CHATS = TypeAdapter(list[Chat])
_MESSAGES = TypeAdapter(list[Message])
_AGENTS = TypeAdapter(list[Agent])

JSON = "application/json"


class Invalid(Exception):
    """A request that fails validation; carries its 422 answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__("invalid request")
        self.response = response


def _path_uuid(request: web.Request, name: str) -> UUID:
    # FastAPI validates typed path parameters and answers 422 (not 404) for a malformed UUID.
    try:
        return _UUID.validate_python(request.match_info[name])
    except ValidationError as error:
        raise Invalid(validation_422(error, "path", name)) from error


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        # Straight from bytes: pydantic parses JSON and validates in one pass (and reports
        # malformed JSON as a json_invalid error, as FastAPI does).
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise Invalid(validation_422(error, "body")) from error


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


async def create_chat(request: web.Request) -> web.Response:
    chat = await request.app[STORE].create_chat(await _body(request, ChatCreate))
    return _json(chat.model_dump_json().encode(), 201, {"Location": f"/chats/{chat.chat_id}"})


async def update_chat(request: web.Request) -> web.Response:
    chat_id = _path_uuid(request, "chat_id")
    await request.app[STORE].update_chat(chat_id, await _body(request, ChatUpdate))
    return web.Response(status=204)


async def get_chat(request: web.Request) -> web.Response:
    chat = await request.app[STORE].get_chat(_path_uuid(request, "chat_id"))
    return _json(chat.model_dump_json().encode())


async def list_chats(request: web.Request) -> web.Response:
    chats = await request.app[STORE].list_chats(request.query.get("external_id"))
    return _json(_CHATS.dump_json(chats))


async def add_message(request: web.Request) -> web.Response:
    chat_id = _path_uuid(request, "chat_id")
    await request.app[STORE].add_message(chat_id, await _body(request, MessageCreate))
    # The contract: 200 and an empty object, no message id, no Location.
    return _json(b"{}")


async def list_messages(request: web.Request) -> web.Response:
    messages = await request.app[STORE].list_messages(_path_uuid(request, "chat_id"))
    return _json(_MESSAGES.dump_json(messages))


async def create_agent(request: web.Request) -> web.Response:
    agent = await request.app[STORE].create_agent(await _body(request, AgentCreate))
    return _json(agent.model_dump_json().encode(), 201, {"Location": f"/agents/{agent.agent_id}"})


async def get_agent(request: web.Request) -> web.Response:
    agent = await request.app[STORE].get_agent(_path_uuid(request, "agent_id"))
    return _json(agent.model_dump_json().encode())


async def list_agents(request: web.Request) -> web.Response:
    agents = await request.app[STORE].list_agents(
        request.query.get("name"), request.query.get("email")
    )
    return _json(_AGENTS.dump_json(agents))


def add_routes(app: web.Application) -> None:
    """Register the contract's routes on ``app``."""
    app.router.add_routes(
        [
            web.post("/chats", create_chat),
            web.get("/chats", list_chats, allow_head=False),
            web.get("/chats/{chat_id}", get_chat, allow_head=False),
            web.patch("/chats/{chat_id}", update_chat),
            web.post("/chats/{chat_id}/messages", add_message),
            web.get("/chats/{chat_id}/messages", list_messages, allow_head=False),
            web.post("/agents", create_agent),
            web.get("/agents", list_agents, allow_head=False),
            web.get("/agents/{agent_id}", get_agent, allow_head=False),
        ]
    )
