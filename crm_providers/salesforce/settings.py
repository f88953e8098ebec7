"""Settings of the Salesforce-like stand-in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crm_providers.core.settings import CommonSettings


class SalesforceLimits(BaseModel):
    """The org's API request allocation over a rolling 24 hours (100,000 + licences x adder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allocation: int = Field(100_000, ge=1, description="requests per rolling window")
    window_s: float = Field(86_400.0, gt=0, description="the rolling window (24 h)")


class SalesforceSettings(CommonSettings):
    limits: SalesforceLimits = Field(default_factory=SalesforceLimits)
    query_batch_size: int = Field(
        2000, ge=200, le=2000, description="records per query batch unless the client asks fewer"
    )
    integration_user_id: str = Field(
        "005000000000API", min_length=15, max_length=15, description="commitUser of API writes"
    )
    default_user_id: str = Field(
        "005000000000USR", min_length=15, max_length=15, description="commitUser of user edits"
    )
    webhook_batch_size: int = Field(100, ge=1, le=1000, description="change events per push")
