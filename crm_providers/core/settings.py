"""Settings shared by the three stand-ins: faults (switchable at run time), webhooks, seeding.

Each provider's settings model extends ``CommonSettings`` with its own limits and markers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """Faults, all off by default; ``PATCH /_standin/faults`` merges into these and re-validates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of API requests answered 500 before any change"
    )
    ambiguous_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of successful writes answered 500 after commit"
    )
    latency_ms: float = Field(0.0, ge=0.0, le=60_000.0, description="delay added to each request")
    duplicate_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of webhook deliveries sent a second time"
    )
    reorder_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="chance two neighbouring webhook events swap places"
    )
    cursor_drift: bool = Field(
        True,
        description=(
            "modified-since paging re-reads the live table at every page (records changed "
            "meanwhile move, so some are seen twice and some skipped); false: the first page "
            "fixes the result"
        ),
    )


class WebhookSettings(BaseModel):
    """Where change notifications go and how failed deliveries are retried."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description="target of the deliveries; none: events are kept")
    paused: bool = Field(False, description="hold deliveries (events queue up) until unpaused")
    max_attempts: int = Field(
        5, ge=1, le=50, description="attempts per delivery, the first included"
    )
    backoff_s: float = Field(1.0, ge=0.0, le=3600.0, description="wait before the first retry")
    backoff_factor: float = Field(2.0, ge=1.0, le=10.0, description="each retry waits this x more")
    backoff_max_s: float = Field(300.0, ge=0.0, description="longest wait between attempts")
    timeout_s: float = Field(5.0, gt=0.0, le=120.0, description="receiver's time to answer")


class CommonSettings(FaultSettings):
    """What every provider stand-in takes; the fault fields are the initial fault settings."""

    seed: int = Field(1, description="seeds ids, sample records and fault draws")
    records: int = Field(0, ge=0, le=100_000, description="sample records per object at start")
    snapshot: str | None = Field(
        None, description="JSON file the store is loaded from at start and saved to at stop"
    )
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)

    def faults(self) -> FaultSettings:
        """The fault part of these settings."""
        return FaultSettings.model_validate(
            self.model_dump(include=set(FaultSettings.model_fields))
        )
