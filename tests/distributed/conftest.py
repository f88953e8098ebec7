"""A connected JetStream inbox per test, on a stream (and subjects) no other test uses.

NATS is the one at ``TEST_NATS_URL`` (default: the local server). Where it cannot be reached, the
tests skip saying why; with ``CI_REQUIRE_SERVICES=1`` (CI sets it) they fail instead, so CI never
passes by skipping them.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import nats
import pytest
from nats.js import JetStreamContext

from integration.core.distributed.jetstream import JetStreamInbox

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
PARTITIONS = 4


@functools.cache
def _nats_unavailable() -> str | None:
    """Why the tests cannot use NATS, or None when they can."""
    parts = urlsplit(NATS_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        return f"NATS is not reachable at {host}:{port} ({exc})"
    return None


def nats_url() -> str:
    """The server's URL; skips the test where there is none (fails it where CI requires one)."""
    reason = _nats_unavailable()
    if reason is not None:
        if os.environ.get("CI_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and CI_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(reason)
    return NATS_URL


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
