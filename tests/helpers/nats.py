"""The NATS server the tests use (``TEST_NATS_URL``, default the local one): skipped where it
cannot be reached, failed instead with ``CI_REQUIRE_SERVICES=1`` (CI never passes by skipping)."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

import pytest

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


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
