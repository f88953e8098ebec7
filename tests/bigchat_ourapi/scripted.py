"""Engine settings for tests that script BigChat window by window."""

from __future__ import annotations

from integration.core.engine import EngineSettings
from integration.core.retry import RetryPolicy


def scripted_settings(windows: int, now: float, *, rescan_interval: float = 5.0) -> EngineSettings:
    """One-second windows, one per scripted window, the last ending at ``now``; no waiting
    between polls, and retries in milliseconds."""
    return EngineSettings(
        poll_interval=0.01,
        lag=0,
        max_window=1,
        start_at=now - windows - 1,
        concurrency=4,
        retry=RetryPolicy(base=0.001, max_delay=0.005),
        rescan_interval=rescan_interval,
    )
