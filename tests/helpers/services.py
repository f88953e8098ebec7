"""Services the tests need from this machine (PostgreSQL, NATS): a test skips, saying why, where
one cannot be reached, and fails instead with ``CI_REQUIRE_SERVICES=1`` (CI sets it), so CI never
passes by skipping them."""

from __future__ import annotations

import os
import socket

import pytest


def unreachable(name: str, host: str, port: int) -> str | None:
    """Why ``name`` at ``host:port`` cannot be used, or None when it answers a connection."""
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        return f"{name} is not reachable at {host}:{port} ({exc})"
    return None


def skip_or_fail(reason: str | None) -> None:
    """Nothing when ``reason`` is None; otherwise skip the test, or fail it under CI."""
    if reason is None:
        return
    if os.environ.get("CI_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and CI_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(reason)
