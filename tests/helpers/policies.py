"""Retry policies for tests: the production shape, in milliseconds instead of seconds."""

from __future__ import annotations

from integration.core.retry import RetryPolicy

FAST_RETRY = RetryPolicy(base=0.01, max_delay=0.05)
"""The engine's retries, a hundred times faster: an outage of a second is a few dozen tries."""
