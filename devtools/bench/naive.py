"""The baseline: BigChat → OurAPI written the way such integrations usually are.

One event at a time, in feed order, nothing cached: before each write it looks up the chat
(``GET /chats?external_id=``) and, where the write needs one, the agent (``GET /agents?email=``,
after asking BigChat who the advisor is). It is correct on the stand-ins without faults, which is
all it is asked to be: the yardstick the worker is measured against.

    python -m devtools.bench.naive --bigchat-url URL --ourapi-url URL \
        --start-at UNIX --end-at UNIX --out PATH
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel

from .models import Applied, NaiveOutput

MAX_PAGES = 100_000


class Event(BaseModel):
    conversation_id: int
    event_name: str
    event_at: int
    data: dict[str, Any] | None = None


class EventsPage(BaseModel):
    nextPageUrl: str | None = None
    events: list[Event]


class Conversation(BaseModel):
    conversation_id: int
    advisor_id: int


class Advisor(BaseModel):
    advisor_id: int
    name: str
    email_address: str


class Chat(BaseModel):
    chat_id: str
    external_id: str
    ended_at: str | None = None


class Agent(BaseModel):
    agent_id: str


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


class NaiveSync:
    def __init__(self, session: aiohttp.ClientSession, bigchat: str, ourapi: str) -> None:
        self.http = session
        self.bigchat = bigchat.rstrip("/")
        self.ourapi = ourapi.rstrip("/")

    async def _get(self, url: str, **params: str) -> Any:
        async with self.http.get(url, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def _send(self, method: str, url: str, body: dict[str, Any]) -> Any:
        async with self.http.request(method, url, json=body) as response:
            response.raise_for_status()
            return await response.read()

    # -- lookups, done before every write ------------------------------------------------------

    async def find_chat(self, conversation_id: int) -> Chat | None:
        found = await self._get(f"{self.ourapi}/chats", external_id=str(conversation_id))
        chats = [Chat.model_validate(c) for c in found]
        return next((c for c in chats if c.external_id == str(conversation_id)), None)

    async def agent_for(self, advisor_id: int) -> str:
        advisor = Advisor.model_validate(await self._get(f"{self.bigchat}/advisors/{advisor_id}"))
        found = await self._get(f"{self.ourapi}/agents", email=advisor.email_address)
        if found:
            return Agent.model_validate(found[0]).agent_id
        body = {"name": advisor.name, "email": advisor.email_address}
        async with self.http.post(f"{self.ourapi}/agents", json=body) as response:
            response.raise_for_status()
            return Agent.model_validate(await response.json()).agent_id

    async def chat_for(self, event: Event) -> Chat:
        chat = await self.find_chat(event.conversation_id)
        return chat if chat is not None else await self.create_chat(event)

    async def create_chat(self, event: Event) -> Chat:
        conversation = Conversation.model_validate(
            await self._get(f"{self.bigchat}/conversations/{event.conversation_id}")
        )
        body = {
            "external_id": str(event.conversation_id),
            "started_at": iso(event.event_at),
            "agent_id": await self.agent_for(conversation.advisor_id),
        }
        async with self.http.post(f"{self.ourapi}/chats", json=body) as response:
            response.raise_for_status()
            return Chat.model_validate(await response.json())

    # -- one event ---------------------------------------------------------------------------

    async def apply(self, event: Event) -> None:
        data = event.data or {}
        if event.event_name == "START":
            await self.create_chat(event)
        elif event.event_name == "MESSAGE":
            chat = await self.chat_for(event)
            body = {"sent_at": iso(event.event_at), "text": data["message"], "agent_id": None}
            await self._send("POST", f"{self.ourapi}/chats/{chat.chat_id}/messages", body)
        elif event.event_name == "TRANSFER":
            chat = await self.chat_for(event)
            agent = await self.agent_for(int(data["new_advisor_id"]))
            await self._send("PATCH", f"{self.ourapi}/chats/{chat.chat_id}", {"agent_id": agent})
        elif event.event_name == "END":
            chat = await self.chat_for(event)
            if chat.ended_at is None:
                body = {"ended_at": iso(event.event_at)}
                await self._send("PATCH", f"{self.ourapi}/chats/{chat.chat_id}", body)

    async def run(self, start: float, end: float, applied: list[Applied]) -> None:
        """Apply every event of [start, end), page by page, recording each as it is applied."""
        url: str | None = f"{self.bigchat}/events"
        params: dict[str, str] | None = {"start_at": iso(start), "end_at": iso(end), "page": "0"}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            async with self.http.get(url, params=params) as response:
                response.raise_for_status()
                page = EventsPage.model_validate(await response.json())
            for event in page.events:
                await self.apply(event)
                applied.append(Applied(event_at=event.event_at, finished_at=time.time()))
            url, params = page.nextPageUrl, None
        raise ValueError(f"more than {MAX_PAGES} pages")


async def main_async(args: argparse.Namespace) -> NaiveOutput:
    async with aiohttp.ClientSession() as session:
        sync = NaiveSync(session, args.bigchat_url, args.ourapi_url)
        applied: list[Applied] = []
        try:
            await sync.run(args.start_at, args.end_at, applied)
        except (aiohttp.ClientError, KeyError, ValueError) as exc:
            return NaiveOutput(applied=applied, errors=[f"{exc.__class__.__name__}: {exc}"])
        return NaiveOutput(applied=applied)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.naive", description=__doc__)
    parser.add_argument("--bigchat-url", required=True)
    parser.add_argument("--ourapi-url", required=True)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--end-at", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    output = asyncio.run(main_async(args))
    args.out.write_text(output.model_dump_json())
    for error in output.errors:
        print(f"naive: {error}", file=sys.stderr)
    return 1 if output.errors else 0


if __name__ == "__main__":
    sys.exit(main())
