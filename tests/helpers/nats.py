"""The NATS server the tests use (``TEST_NATS_URL``, default the local one): skipped where it
cannot be reached, failed instead with ``CI_REQUIRE_SERVICES=1`` (CI never passes by skipping)."""

from __future__ import annotations

import functools
import os
from urllib.parse import urlsplit

from tests.helpers.services import skip_or_fail, unreachable

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


@functools.cache
def _nats_unavailable() -> str | None:
    """Why the tests cannot use NATS, or None when they can."""
    parts = urlsplit(NATS_URL)
    return unreachable("NATS", parts.hostname or "127.0.0.1", parts.port or 4222)


def nats_url() -> str:
    """The server's URL; skips the test where there is none (fails it where CI requires one)."""
    skip_or_fail(_nats_unavailable())
    return NATS_URL
