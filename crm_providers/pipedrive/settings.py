"""Settings of the Pipedrive-like stand-in."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from crm_providers.core.settings import CommonSettings

OUR_ID_KEY = hashlib.sha1(b"our_id").hexdigest()
"""Pipedrive names custom fields by a 40-character hash; this one holds our record id."""


class PipedriveLimits(BaseModel):
    """A daily token budget (each call costs tokens) and a burst limit per rolling 2 seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_tokens: int = Field(30_000, ge=1, description="tokens per day (account-wide)")
    burst_limit: int = Field(20, ge=1, description="requests per rolling burst window")
    burst_window_s: float = Field(2.0, gt=0, description="the burst window, seconds")
    abuse_after: int | None = Field(
        None,
        ge=1,
        description="after this many 429s within 10 minutes, answer 403 to everything for "
        "abuse_block_s (persistent abuse); none: never",
    )
    abuse_block_s: float = Field(600.0, ge=0, description="how long the 403 block lasts")
    utc_offset_s: float = Field(0.0, ge=-14 * 3600, le=14 * 3600, description="the day resets here")


class PipedriveSettings(CommonSettings):
    limits: PipedriveLimits = Field(default_factory=PipedriveLimits)
    integration_user_id: int = Field(
        9001, ge=1, description="user id of the API token (meta.user_id of our writes)"
    )
    default_user_id: int = Field(1001, ge=1, description="user of /_standin/ edits naming none")
    company_id: int = Field(777, ge=1, description="the account's id in webhook meta")
    our_id_key: str = Field(OUR_ID_KEY, min_length=1, description="custom field key of our id")
