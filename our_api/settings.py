"""Settings of the stand-in: where it stores data and which faults it injects."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """The fault knobs that can be changed while the server runs (``PATCH /_standin/faults``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of requests answered 500")
    ambiguous_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of successful writes answered 500 after commit"
    )
    latency_ms: float = Field(0.0, ge=0.0, le=60_000.0, description="delay added to each request")
    rate_limit: float | None = Field(
        None, gt=0.0, description="requests per second beyond which the answer is 429"
    )


class OurApiSettings(FaultSettings):
    """Everything ``create_app`` needs; the fault fields are the initial fault settings."""

    db: str = Field("our_api.db", min_length=1, description='SQLite file, or ":memory:"')
    seed: int | None = Field(None, description="seeds the fault RNG so fault runs repeat")
    null_sink: bool = Field(False, description="answer valid-shaped bodies, store nothing")

    def faults(self) -> FaultSettings:
        """The fault part of these settings."""
        return FaultSettings.model_validate(
            self.model_dump(include=set(FaultSettings.model_fields))
        )
