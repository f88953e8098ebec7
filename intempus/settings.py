"""Settings of the Intempus stand-in.

Two models: ``Switches`` holds everything that may change while the server runs (faults, rate
limits and the switches that reproduce the contract's uncertain behaviours; ``PATCH
/_standin/faults`` merges into it), and ``IntempusSettings`` adds what is fixed at start-up
(database, seed, users, where ids and logical timestamps start).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from standin_kit.faults import FaultRates

DEFAULT_USER = "sync@example.com"
DEFAULT_API_KEY = "secret-key"


class Switches(FaultRates):
    """Run-time switches: the common faults, then Intempus's own. The defaults are the behaviour
    the contract calls most likely."""

    rate_per_minute: int | None = Field(
        500, ge=1, description="requests per user in any 60 s window; None switches it off"
    )
    rate_per_day: int | None = Field(
        50_000, ge=1, description="requests per user per UTC day; None switches it off"
    )
    lt_late_commit: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of writes that commit with a logical timestamp below one already "
        "served in a Logical-Timestamp header",
    )
    offset_drift: bool = Field(False, description="offset pages read the live table")
    html_500: bool = Field(False, description="500 answers carry an HTML page, not JSON")
    stale_write_lt: bool = Field(
        True, description="POST bodies show logical_timestamp 42, PUT/PATCH bodies the old one"
    )
    put_creates: bool = Field(False, description="PUT to a missing id creates it (tastypie)")
    unique_number: bool = Field(False, description="a duplicate (customer, number) is a 400")
    delete_cascade: bool = Field(False, description="DELETE ignores work reports")
    strict_slash: bool = Field(False, description="paths without the trailing slash are 404")
    cursor_meta_full: bool = Field(False, description="cursor pages also carry offset/total_count")
    filters: Literal["full", "minimal"] = Field(
        "full", description="minimal: only logical_timestamp__gt and active filter"
    )
    basic_auth: bool = Field(True, description="accept Authorization: Basic user:key too")


class IntempusSettings(Switches):
    """Everything ``create_app`` needs; the switch fields are the initial switches."""

    db: str = Field("intempus.db", min_length=1, description='SQLite file, or ":memory:"')
    seed: int = Field(1, description="seeds the sample data and the fault draws")
    cases: int = Field(0, ge=0, le=100_000, description="sample cases created in an empty db")
    users: dict[str, str] = Field(
        default_factory=lambda: {DEFAULT_USER: DEFAULT_API_KEY},
        min_length=1,
        description="username -> API key",
    )
    lt_start: int = Field(9_083_590_836, ge=1, description="the first logical timestamp")
    lt_step: int = Field(2, ge=1, description="gap between two logical timestamps")
    id_start: int = Field(9_584_677, ge=1, description="the first case id")

    def switches(self) -> Switches:
        """The run-time part of these settings."""
        return Switches.model_validate(self.model_dump(include=set(Switches.model_fields)))
