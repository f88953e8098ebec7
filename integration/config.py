"""Settings: environment variables, a ``.env`` file, or command-line flags (flags win), checked at
start-up so a bad value stops the worker at once with one clear line."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def log_setting_case(value: object, info: ValidationInfo) -> object:
    """LOG_LEVEL and LOG_FORMAT in any case (``debug``, ``JSON``): levels upper-case, formats
    lower-case. Shared by every sync's settings."""
    if isinstance(value, str):
        return value.upper() if info.field_name == "log_level" else value.lower()
    return value


class Settings(BaseSettings):
    # An empty variable (METRICS_PORT=) means "not set", as operators write in env files.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    bigchat_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8267")
    ourapi_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8266")
    state_db: Path = Path("integration-state.db")
    poll_interval: float = Field(10.0, gt=0, description="seconds between polls of /events")
    poll_lag: float = Field(2.0, ge=0, description="a window ends this many seconds before now")
    max_window: float = Field(300.0, gt=0, description="longest window when catching up")
    concurrency: int = Field(64, ge=1, le=1024, description="conversations applied in parallel")
    ourapi_max_in_flight: int = Field(32, ge=1, le=1024)
    bigchat_max_in_flight: int = Field(8, ge=1, le=1024)
    http_timeout: float = Field(10.0, gt=0)
    start_at: datetime | None = Field(None, description="where a brand-new state begins")
    shutdown_grace: float = Field(10.0, ge=0)
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="serve /healthz and /metrics on this port (off when unset)",
    )
    metrics_host: str = Field("127.0.0.1", description="address /healthz and /metrics listen on")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    _log_case = field_validator("log_level", "log_format", mode="before")(log_setting_case)

    @field_validator("start_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # a time without an offset is read as UTC
        return value


def explain(exc: ValidationError) -> str:
    """A settings error as one line naming the variable, e.g.
    ``POLL_INTERVAL: Input should be greater than 0 (got '-1')``. A password in a URL
    (``scheme://user:secret@host``) is hidden: the line goes to a terminal or a log."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper() or "SETTINGS"
        got = err.get("input")
        if isinstance(got, str):
            got = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", got)
        shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
        parts.append(f"{name}: {err['msg']}{shown}")
    return "; ".join(parts)
