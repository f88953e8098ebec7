"""Checking a run against the ground truth: ``verify`` (the project's own reconciliation) for a
real OurAPI, in slices.

Why slices: ``verify`` wraps each read with the same ``backoff`` decorator object, and backoff's
``on_exception`` re-configures its handlers on every decoration (``nonlocal on_backoff`` grows by
one handler per call), so one call over N conversations costs O(N^2): about ten minutes of CPU for
the 1,331 conversations of a 10,000-event bench. Slices of ``SLICE`` ids keep that linear without
touching ``verify`` itself.
"""

from __future__ import annotations

import asyncio

import aiohttp

from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.ourapi.client import OurApiClient
from integration.core.http import HttpService
from integration.pipelines.bigchat_ourapi.verify import Report, verify

SLICE = 25


async def _verify(bigchat_url: str, ourapi_url: str, ids: list[int]) -> Report:
    total = Report()
    async with aiohttp.ClientSession() as session:
        bigchat = BigChatClient(HttpService("bigchat", bigchat_url, session, max_in_flight=8))
        ourapi = OurApiClient(HttpService("ourapi", ourapi_url, session, max_in_flight=16))
        for first in range(0, len(ids), SLICE):
            part = await verify(bigchat, ourapi, ids[first : first + SLICE], concurrency=16)
            total.conversations += part.conversations
            total.chats += part.chats
            total.messages_expected += part.messages_expected
            total.messages_held += part.messages_held
            total.findings.extend(part.findings)
            total.duplicated_agents = part.duplicated_agents
    return total


def findings(bigchat_url: str, ourapi_url: str, ids: list[int]) -> list[str]:
    """What differs between BigChat's conversations ``ids`` and OurAPI (empty: nothing)."""
    report = asyncio.run(_verify(bigchat_url, ourapi_url, ids))
    if report.ok and report.conversations == len(ids):
        return []
    problems = sorted({f.problem for f in report.findings})
    counts = ", ".join(f"{report.count(p)} {p}" for p in problems) or "no differences"
    dup = f", duplicated agents {report.duplicated_agents}" if report.duplicated_agents else ""
    first = "; ".join(f"{f.conversation_id}: {f.problem} ({f.detail})" for f in report.findings[:3])
    return [
        f"verify: {report.conversations}/{len(ids)} conversations, {counts}{dup}"
        + (f"; e.g. {first}" if first else "")
    ]
