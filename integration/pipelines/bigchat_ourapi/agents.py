"""BigChat advisors as OurAPI agents: found by e-mail before one is created (and again after
OurAPI's ambiguous 500), remembered in the state store, and an advisor that cannot be made an
agent remembered for a while so it is not asked about on every event."""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from ...connectors.bigchat.client import BigChatClient
from ...connectors.ourapi.client import OurApiClient, agent_clash
from ...connectors.ourapi.models import AgentCreate
from ...core.errors import PermanentError, TransientError
from ...core.store import StateStore

log = logging.getLogger("integration.bigchat")

AGENTS = "agent"

AGENT_RETRY_SECONDS = 60.0
"""An advisor that could not be made an agent is tried again at most this often."""


class AgentProblem(PermanentError):
    """An advisor cannot be made an agent: BigChat does not know it, or OurAPI refuses it. It
    never blocks: the conversation goes on with the last agent that could be set."""

    def __init__(self, message: str) -> None:
        super().__init__(message, blocking=False)


class Agents:
    """The OurAPI agent of each BigChat advisor."""

    def __init__(self, bigchat: BigChatClient, ourapi: OurApiClient, store: StateStore) -> None:
        # BigChat is asked for the advisor's name and e-mail: the events carry only its id.
        self.bigchat = bigchat
        self.ourapi = ourapi
        self.store = store
        self._agents: dict[int, UUID] = {}
        self._failures: dict[int, tuple[str, float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def agent_for(self, advisor_id: int) -> UUID:
        """The advisor's agent, found or created; raises ``AgentProblem`` if it cannot be."""
        agent = self._agents.get(advisor_id)
        if agent is not None:
            return agent
        failed = self._failures.get(advisor_id)
        if failed is not None and time.monotonic() - failed[1] < AGENT_RETRY_SECONDS:
            raise AgentProblem(failed[0])
        lock = self._locks.setdefault(advisor_id, asyncio.Lock())
        async with lock:  # one lookup per advisor, however many conversations ask at once
            agent = self._agents.get(advisor_id)
            if agent is None:
                stored = await self.store.map_get(AGENTS, str(advisor_id))
                try:
                    agent = UUID(stored) if stored else await self._resolve(advisor_id)
                except AgentProblem as problem:
                    self._failures[advisor_id] = (str(problem), time.monotonic())
                    log.warning("%s", problem)
                    raise
                self._failures.pop(advisor_id, None)
                if not stored:
                    await self.store.map_put(AGENTS, str(advisor_id), str(agent))
                self._agents[advisor_id] = agent
        return agent

    def last_problem(self, advisor_id: int) -> str:
        """Why the advisor could last not be made an agent ("" if it could)."""
        return self._failures.get(advisor_id, ("", 0.0))[0]

    async def forget(self, advisor_id: int) -> None:
        """OurAPI no longer has the agent remembered for this advisor: look it up again."""
        self._agents.pop(advisor_id, None)
        await self.store.map_put(AGENTS, str(advisor_id), "")

    async def _resolve(self, advisor_id: int) -> UUID:
        advisor = await self.bigchat.advisor(advisor_id)
        if advisor is None:
            raise AgentProblem(f"BigChat has no advisor {advisor_id}")
        name, email = advisor.name.strip(), advisor.email_address.strip()
        found = await self.ourapi.find_agents(email=email)
        if found:
            return found[0].agent_id
        try:
            return (await self.ourapi.create_agent(AgentCreate(name=name, email=email))).agent_id
        except TransientError:
            # OurAPI's 500 may be a clash or a write that did land: look before trying again.
            found = await self.ourapi.find_agents(email=email)
            if found:
                return found[0].agent_id
            clash = agent_clash(name, email, await self.ourapi.find_agents(name=name))
            if clash is not None:
                raise AgentProblem(f"advisor {advisor_id}: {clash}") from None
            raise
        except PermanentError as exc:  # OurAPI refused the agent (e.g. a name too short)
            raise AgentProblem(f"advisor {advisor_id}: {exc}") from None
