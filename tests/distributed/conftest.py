"""A connected JetStream inbox per test, on a stream (and subjects) no other test uses.

NATS is the one at ``TEST_NATS_URL`` (default: the local server). Where it cannot be reached, the
tests skip saying why; with ``CI_REQUIRE_SERVICES=1`` (CI sets it) they fail instead, so CI never
passes by skipping them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext

from integration.core.distributed.jetstream import JetStreamInbox
from tests.helpers.nats import nats_url

PARTITIONS = 4


def fresh_sync() -> str:
    """A sync name no other test uses: streams of one server may not share subjects."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def raw() -> AsyncIterator[JetStreamContext]:
    """A plain nats-py JetStream context, to look at the server without the inbox's code."""
    nc = await nats.connect(nats_url(), max_reconnect_attempts=1)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


@pytest.fixture
async def inbox(raw: JetStreamContext) -> AsyncIterator[JetStreamInbox]:
    """A connected inbox of ``PARTITIONS`` partitions on its own stream, deleted afterwards."""
    inbox = JetStreamInbox(nats_url(), fresh_sync(), PARTITIONS)
    await inbox.connect()
    try:
        yield inbox
    finally:
        await inbox.close()
        await raw.delete_stream(inbox.stream)
