"""The BigChat → OurAPI sync's settings: its environment variables (and ``.env``), checked at
start-up so a bad value stops the worker at once with one clear line. Its names are the
documented ones, unprefixed (``BIGCHAT_URL``, ``STATE_DB``, ``POLL_INTERVAL``): it is the first
sync, and the default command."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from pydantic import AnyHttpUrl, Field, field_validator

from ...core.engine import EngineSettings
from ...core.retry import RetryPolicy
from ...core.sync import SyncSettings


class BigChatOurApiSettings(SyncSettings):
    DURATIONS: ClassVar[frozenset[str]] = SyncSettings.DURATIONS | {
        "poll_lag",
        "max_window",
        "http_timeout",
        "ourapi_write_horizon",
    }

    bigchat_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8267"),
        description="BigChat's base URL; user:password@ in it become the credentials",
    )
    ourapi_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8266"),
        description="OurAPI's base URL; user:password@ in it become the credentials",
    )
    state_db: Path = Field(
        Path("integration-state.db"),
        description="the worker's state: cursor, inbox, dead letters, id maps (SQLite)",
    )
    poll_interval: float = Field(10.0, gt=0, description="seconds between polls of /events")
    poll_lag: float = Field(2.0, ge=0, description="a window ends this many seconds before now")
    max_window: float = Field(300.0, gt=0, description="longest window when catching up")
    concurrency: int = Field(64, ge=1, le=1024, description="conversations applied in parallel")
    ourapi_max_in_flight: int = Field(
        32, ge=1, le=1024, description="most requests to OurAPI at once"
    )
    bigchat_max_in_flight: int = Field(
        8, ge=1, le=1024, description="most requests to BigChat at once"
    )
    http_timeout: float = Field(10.0, gt=0, description="seconds, every HTTP call")
    ourapi_write_horizon: float = Field(
        30.0,
        gt=0,
        description="seconds after which a write OurAPI received can no longer be applied; a "
        "write whose answer was lost is read back only after this, so it is never posted twice",
    )
    start_at: datetime | None = Field(
        None, description="where a brand-new state begins (ISO 8601; default: now)"
    )
    retention: float = Field(
        7 * 86400.0,
        gt=0,
        description=(
            "seconds BigChat can re-serve an event: applied inbox entries that occurred longer "
            "ago are deleted, and their fingerprints no longer de-duplicate (an event re-served "
            "after that would be applied again; the BigChat pipeline guards against it by "
            "reading the chat back for a conversation it re-adopts)"
        ),
    )

    @field_validator("start_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # a time without an offset is read as UTC
        return value

    def engine_settings(self, retry: RetryPolicy | None = None) -> EngineSettings:
        return EngineSettings(
            poll_interval=self.poll_interval,
            lag=self.poll_lag,
            max_window=self.max_window,
            start_at=self.start_at.timestamp() if self.start_at else None,
            concurrency=self.concurrency,
            shutdown_grace=self.shutdown_grace,
            retention=self.retention,
            retry=retry or RetryPolicy(),
        )
