"""The CRM sync's settings. Its generic names carry the ``CRM_`` prefix (``CRM_STATE_DB``,
``CRM_POLL_INTERVAL``); what it keeps in step with what is in the connections file
(``CRM_CONNECTIONS``), whose tokens are read from the environment variables it names."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from ...core.sync import SyncSettings


class CrmSettings(SyncSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_")

    STATE_FIELDS: ClassVar[tuple[str, ...]] = ("connections",)
    DURATIONS: ClassVar[frozenset[str]] = SyncSettings.DURATIONS | {
        "full_scan_interval",
        "overlap",
        "http_timeout",
        "breaker_window",
    }

    state_db: Path = Field(
        Path("crm-state.db"),
        description="the sync's state: positions, inbox, links, decisions, dead letters (SQLite)",
    )
    connections: Path = Field(
        Path("crm-connections.toml"),
        description="the connections file: our system's URL, and each provider account with its "
        "mapping, rules, field owners and limits",
    )
    poll_interval: float = Field(5.0, gt=0, description="seconds between polls")
    concurrency: int = Field(
        64,
        ge=1,
        le=1024,
        description="records applied in parallel (each waits up to CRM_BATCH_LINGER to share "
        "a batch call, so this caps the records per call)",
    )
    overlap: float = Field(
        5.0,
        ge=0,
        description="seconds each provider read goes back before the last position (late "
        "commits, shared timestamps; what comes twice is dropped by fingerprint)",
    )
    full_scan_interval: float = Field(
        900.0,
        gt=0,
        description="seconds between full scans of each provider object (how deletes are seen "
        "where a provider does not list them)",
    )
    breaker_hops: int = Field(
        5, ge=1, description="carries of one record within CRM_BREAKER_WINDOW that quarantine it"
    )
    breaker_window: float = Field(60.0, gt=0, description="seconds, the ping-pong breaker's window")
    batch_linger: float = Field(
        0.02, ge=0, description="seconds a write waits for others to share a batch call"
    )

    @field_validator("connections")
    @classmethod
    def _readable(cls, path: Path) -> Path:
        """The file is read and checked whole here, so a mistake in it is a settings error:
        one line naming it, exit status 2, before anything starts."""
        from .connections import ConnectionsError, load

        try:
            load(path)
        except ConnectionsError as exc:
            raise ValueError(str(exc)) from None
        return path

    http_timeout: float = Field(15.0, gt=0, description="seconds, every HTTP call")
    max_in_flight: int = Field(8, ge=1, le=256, description="most requests to each service at once")
