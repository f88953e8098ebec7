"""The Intempus ⇄ case store sync's settings. Its generic names carry the ``INTEMPUS_`` prefix
(``INTEMPUS_STATE_DB``, ``INTEMPUS_POLL_INTERVAL``); the services' own names are as documented
(``INTEMPUS_URL``, ``INTEMPUS_USER``, ``INTEMPUS_API_KEY``, ``CASE_STORE_URL``). The API key is a
secret: it is never shown, in a log line, an error or ``--help``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ...core.sync import SyncSettings


class IntempusSettings(SyncSettings):
    model_config = SettingsConfigDict(env_prefix="INTEMPUS_")

    DURATIONS: ClassVar[frozenset[str]] = SyncSettings.DURATIONS | {
        "full_scan_interval",
        "http_timeout",
    }

    state_db: Path = Field(
        Path("intempus-state.db"),
        description="the sync's state: feed positions, inbox, links, conflicts (SQLite)",
    )
    intempus_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8270"),
        validation_alias="intempus_url",
        description="Intempus's base URL (the API is under /web/v1/)",
    )
    intempus_user: str = Field(
        "sync", min_length=1, validation_alias="intempus_user", description="Intempus API user"
    )
    intempus_api_key: SecretStr = Field(
        SecretStr(""),
        validation_alias="intempus_api_key",
        description="Intempus API key (never logged)",
    )
    case_store_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8269"),
        validation_alias="case_store_url",
        description="the local case store's base URL",
    )
    full_scan_interval: float = Field(
        600.0,
        gt=0,
        description="seconds between full scans of Intempus (the only way to see its deletes, "
        "and a net under its change feed)",
    )
    conflict_policy: Literal["intempus", "local"] = Field(
        "intempus", description="who wins when both sides changed the same field: intempus or local"
    )
    delete_fallback: Literal["close", "dead-letter"] = Field(
        "close",
        description="when Intempus refuses to delete a case (it has work reports): close it "
        "(inactive, no new work reports) or set it aside as a dead letter",
    )
    match_by_number: bool = Field(
        True,
        description="at first contact, link an unlinked case to the other side's unlinked case "
        "of the same customer and number, when each is the only one of its number on its side "
        "(instead of creating a second copy)",
    )
    max_delete_fraction: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a full scan in which more than this share of the linked cases vanished "
        "deletes nothing (a person confirms)",
    )
    max_per_minute: int = Field(
        400, ge=1, description="requests to Intempus per minute, at most (its limit is 500)"
    )
    max_per_day: int = Field(
        40_000, ge=1, description="requests to Intempus per day, at most (its limit is 50,000)"
    )
    http_timeout: float = Field(10.0, gt=0, description="seconds, every HTTP call")
    max_in_flight: int = Field(8, ge=1, le=256, description="most requests to each service at once")
