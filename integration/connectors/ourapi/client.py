"""OurAPI's calls, with the contract's quirks turned into plain answers: a duplicate chat is a
``ChatExists`` (OurAPI says 404), a 500 on POST /agents may be a name or e-mail clash."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, TypeAdapter, ValidationError

from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response, unexpected
from .models import Agent, AgentCreate, Chat, ChatCreate, ChatUpdate, Message, MessageCreate

_CHATS = TypeAdapter(list[Chat])
_MESSAGES = TypeAdapter(list[Message])
_AGENTS = TypeAdapter(list[Agent])
_CHAT = TypeAdapter(Chat)
_AGENT = TypeAdapter(Agent)
"""Built once: a TypeAdapter costs far more to build than to use."""

DUPLICATE_CHAT = "A chat with that external ID already exists."


class ChatExists(Exception):
    """POST /chats refused: a chat with that external_id is already there."""


def _body(model: BaseModel) -> bytes:
    # Encoded by pydantic in one pass, rather than dumped to dicts and encoded again.
    return model.model_dump_json(exclude_unset=True).encode()


def _parse(adapter: TypeAdapter[Any], response: Response, what: str) -> Any:
    try:
        # From the bytes: one pass in pydantic's own parser instead of json.loads, then validation.
        return adapter.validate_json(response.body)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            response.json()  # raises the error an answer that is not JSON has always raised
        raise TransientError(
            f"OurAPI {what}: answer has the wrong shape ({exc.errors()[0]['msg']})"
        ) from None


class OurApiClient:
    def __init__(self, http: HttpService) -> None:
        self.http = http

    async def find_chat(self, external_id: str) -> Chat | None:
        response = await self.http.request("GET", "chats", params={"external_id": external_id})
        if response.status != 200:
            raise unexpected(response, "OurAPI GET /chats")
        chats: list[Chat] = _parse(_CHATS, response, "GET /chats")
        return next((c for c in chats if c.external_id == external_id), None)

    async def create_chat(self, chat: ChatCreate) -> Chat:
        response = await self.http.request("POST", "chats", content=_body(chat))
        if response.status == 404 and DUPLICATE_CHAT in response.detail():
            raise ChatExists(chat.external_id)
        if response.status not in (200, 201):
            raise unexpected(response, "OurAPI POST /chats")
        result: Chat = _parse(_CHAT, response, "POST /chats")
        return result

    async def update_chat(self, chat_id: UUID, update: ChatUpdate) -> None:
        response = await self.http.request("PATCH", f"chats/{chat_id}", content=_body(update))
        if response.status not in (200, 204):
            raise unexpected(response, f"OurAPI PATCH /chats/{chat_id}")

    async def get_chat(self, chat_id: UUID) -> Chat | None:
        response = await self.http.request("GET", f"chats/{chat_id}")
        if response.status == 404:
            return None
        if response.status != 200:
            raise unexpected(response, f"OurAPI GET /chats/{chat_id}")
        result: Chat = _parse(_CHAT, response, "GET /chats/{id}")
        return result

    async def list_chats(self) -> list[Chat]:
        response = await self.http.request("GET", "chats")
        if response.status != 200:
            raise unexpected(response, "OurAPI GET /chats")
        chats: list[Chat] = _parse(_CHATS, response, "GET /chats")
        return chats

    async def post_message(self, chat_id: UUID, message: MessageCreate) -> None:
        response = await self.http.request(
            "POST", f"chats/{chat_id}/messages", content=_body(message)
        )
        if response.status not in (200, 201):
            raise unexpected(response, f"OurAPI POST /chats/{chat_id}/messages")

    async def messages(self, chat_id: UUID) -> list[Message]:
        response = await self.http.request("GET", f"chats/{chat_id}/messages")
        if response.status != 200:
            raise unexpected(response, f"OurAPI GET /chats/{chat_id}/messages")
        messages: list[Message] = _parse(_MESSAGES, response, "GET /chats/{id}/messages")
        return messages

    async def find_agents(
        self, *, email: str | None = None, name: str | None = None
    ) -> list[Agent]:
        params = {k: v for k, v in (("email", email), ("name", name)) if v is not None}
        response = await self.http.request("GET", "agents", params=params)
        if response.status != 200:
            raise unexpected(response, "OurAPI GET /agents")
        agents: list[Agent] = _parse(_AGENTS, response, "GET /agents")
        return agents

    async def create_agent(self, agent: AgentCreate) -> Agent:
        """Create an agent. A 500 here is ambiguous (a clash, a fault, or a write committed and
        then failed): it surfaces as ``TransientError`` and the caller looks the agent up again."""
        response = await self.http.request("POST", "agents", content=_body(agent))
        if response.status not in (200, 201):
            raise unexpected(response, "OurAPI POST /agents")
        result: Agent = _parse(_AGENT, response, "POST /agents")
        return result


def agent_clash(name: str, email: str, by_name: list[Agent]) -> PermanentError | None:
    """OurAPI refuses a second agent with the same name; say so plainly if that is the cause."""
    other = next((a for a in by_name if a.email.lower() != email.lower()), None)
    if other is None:
        return None
    return PermanentError(
        f"OurAPI already has an agent named {name!r} with another e-mail; "
        f"cannot create one for {email}"
    )
