"""Settings of the HubSpot-like stand-in: its limits (changeable at run time) and its markers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crm_providers.core.settings import CommonSettings


class HubSpotLimits(BaseModel):
    """The three budgets. Defaults are the Free/Starter tier (100 per 10 s, 250,000 a day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    burst_limit: int = Field(100, ge=1, description="requests per rolling window (per app)")
    burst_window_s: float = Field(10.0, gt=0, description="the rolling window, seconds")
    daily_limit: int = Field(250_000, ge=1, description="requests per day (per account)")
    search_per_second: int = Field(4, ge=1, description="CRM search requests per rolling second")
    utc_offset_s: float = Field(
        0.0, ge=-14 * 3600, le=14 * 3600, description="account time zone: the day resets there"
    )


class HubSpotSettings(CommonSettings):
    limits: HubSpotLimits = Field(default_factory=HubSpotLimits)
    app_id: int = Field(4242, ge=1, description="our app's id: sourceId of writes made via the API")
    portal_id: int = Field(62515, ge=1, description="the account (portal) id in webhook events")
    default_user_id: int = Field(
        7001, ge=1, description="the CRM user behind a /_standin/ user edit that names none"
    )
    client_secret: str = Field(
        "standin-secret", min_length=1, description="signs webhook deliveries (signature v3)"
    )
    webhook_batch_size: int = Field(100, ge=1, le=100, description="events per webhook POST")
