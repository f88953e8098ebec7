"""The case store's answers at the boundary (``docs/case-store-contract.md``).

Only the envelopes are modelled: rows stay raw dicts, because the sync validates and
canonicalises each row itself and one bad row must not cost its page.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class ChangesAnswer(BaseModel):
    """``GET /cases/changes``: rows and tombstones in version order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[dict[str, Any]]
    next_after: StrictInt = Field(ge=0)
    high_water: StrictInt = Field(ge=0)


class ListAnswer(BaseModel):
    """``GET /cases/``: live rows (and tombstones when asked) in id order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[dict[str, Any]]
    next_after_id: StrictInt | None
    high_water: StrictInt = Field(ge=0)
