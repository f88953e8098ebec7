"""Settings of the BigChat stand-in: the world it simulates and the faults it injects.

Three models so that each part of the server only sees what concerns it: ``WorldSettings`` drives
the pure simulation (``world.py``), ``FaultSettings`` the serving faults that can be changed at
run time (``PATCH /_standin/faults``), and ``BigChatSettings`` combines both with how the server
pages and when its world began.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WorldSettings(BaseModel):
    """What the simulated live-chat world looks like. Everything follows from ``seed``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = 1
    advisors: int = Field(10, ge=1, le=10_000, description="advisor ids are 1..advisors")
    conversation_rate: float = Field(
        0.5, gt=0, le=1_000, description="new conversations per second (Poisson arrivals)"
    )
    messages_min: int = Field(2, ge=0, le=1_000)
    messages_max: int = Field(8, ge=0, le=1_000)
    message_gap_min_s: int = Field(
        5, ge=0, description="seconds between two events of a conversation (0: same second)"
    )
    message_gap_max_s: int = Field(60, ge=1, le=86_400)
    transfer_probability: float = Field(
        0.15, ge=0, le=1, description="chance of a TRANSFER after each message"
    )

    # Quirks of the real service that live in its data (see the contract's "known to show").
    repeat_end_rate: float = Field(0.0, ge=0, le=1, description="share with extra ENDs")
    repeat_end_max: int = Field(5, ge=1, le=100, description="at most this many extra ENDs")
    after_end_rate: float = Field(0.0, ge=0, le=1, description="share with a MESSAGE after END")
    missing_start_rate: float = Field(
        0.0, ge=0, le=1, description="share whose START /events never serves"
    )
    wrong_old_advisor_rate: float = Field(
        0.0, ge=0, le=1, description="share of TRANSFERs with a wrong old_advisor_id"
    )
    # Harsher quirks (see the contract): each draws from its own stream, so the world with them
    # off is the world of the same seed before they existed.
    repeat_text_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of MESSAGEs repeating an earlier text of their conversation (or a short"
        " one like 'ok'), verbatim or with whitespace around it",
    )
    same_second_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of MESSAGEs and TRANSFERs dated the same second as the event before",
    )
    transfer_before_start_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of conversations whose TRANSFERs are replaced by one dated 1-60 s"
        " before the START (it decides the agent)",
    )
    after_end_delay_s: int | None = Field(
        None,
        ge=0,
        le=30 * 86_400,
        description="when set, the after-END MESSAGE comes this many seconds (plus a gap) after"
        " the END; None: one gap after it",
    )

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Self:
        if self.messages_min > self.messages_max:
            raise ValueError("messages_min must not exceed messages_max")
        if self.message_gap_min_s > self.message_gap_max_s:
            raise ValueError("message_gap_min_s must not exceed message_gap_max_s")
        return self


class FaultSettings(BaseModel):
    """Serving faults, all off by default. Switched off, the contract is all a client sees."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # PATCH /_standin/faults merges its body into the current values and validates the result
    # with this model, so `"rate_limit": null` switches the rate limit off.
    error_rate: float = Field(0.0, ge=0, le=1, description="share of /events answered 500")
    error_all_routes: bool = Field(False, description="apply error_rate to every contract route")
    latency_ms: int = Field(0, ge=0, le=60_000)
    rate_limit: float | None = Field(None, gt=0, description="requests per second before 429")
    duplicate_rate: float = Field(0.0, ge=0, le=1, description="share of events served again")
    late_rate: float = Field(0.0, ge=0, le=1, description="share of events served a window late")
    shuffle: bool = False
    ignore_end_at: bool = False
    unreplayable: bool = False
    history_mode: Literal["full", "start_only"] = Field(
        "full",
        description="full: /conversations/{id} lists every event that happened; start_only: only"
        " the START, like the real service",
    )
    next_page_url_override: str | None = Field(
        None, description="replaces every non-null nextPageUrl (malformed-link tests)"
    )


class BigChatSettings(WorldSettings, FaultSettings):
    """Everything ``create_app`` needs."""

    page_size: int = Field(50, ge=1, le=10_000)
    history: float = Field(
        0.0, ge=0, description="seconds the world has already run when the server starts"
    )
    epoch: float | None = Field(
        None, description="fixed Unix time the world began (overrides history), for restarts"
    )
    live: bool = Field(
        False,
        description="like the real service: each event served once by /events (unreplayable"
        " forced on), meant for the real clock",
    )

    def world_settings(self) -> WorldSettings:
        return WorldSettings.model_validate(
            self.model_dump(include=set(WorldSettings.model_fields))
        )

    def fault_settings(self) -> FaultSettings:
        return FaultSettings.model_validate(
            self.model_dump(include=set(FaultSettings.model_fields))
        )
