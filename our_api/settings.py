"""Settings of the stand-in: where it stores data and which faults it injects."""

from __future__ import annotations

from pydantic import Field

from standin_kit.faults import FaultRates


class FaultSettings(FaultRates):
    """The fault knobs that can be changed while the server runs (``PATCH /_standin/faults``):
    the common three, then OurAPI's own."""

    rate_limit: float | None = Field(
        None, gt=0.0, description="requests per second beyond which the answer is 429"
    )
    # Late-landing writes: a deployment that applies a write long after the client gave up on
    # it. The write is held, then applied whether or not the client is still there.
    late_landing_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of POST/PATCH writes held, then applied late"
    )
    late_landing_s: float = Field(
        1.0, ge=0.0, le=3_600.0, description="how long a late-landing write is held"
    )
    late_landing_paths: str | None = Field(
        None, description='only writes whose path contains this (e.g. "/messages") land late'
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
