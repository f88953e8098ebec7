"""Our internal system's answers at the boundary (``docs/crm-internal-contract.md``).

The envelopes are modelled whole; of each row only what the sync routes on (``object``, ``id``,
``version``, ``deleted``, ``origin``, ``links``, ``born``) is checked, and the row itself stays a
raw dict: the sync maps and validates each row's fields itself, so a field this client does not
know yet must not cost its page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class RowHead(BaseModel):
    """The bookkeeping every row (and tombstone) carries."""

    model_config = ConfigDict(extra="allow", frozen=True)

    object: Literal["contact", "company"]
    id: StrictInt = Field(gt=0)
    version: StrictInt = Field(gt=0)
    deleted: StrictBool
    origin: StrictStr
    links: dict[str, StrictStr]
    born: StrictStr | None


class ChangesAnswer(BaseModel):
    """``GET /changes``: rows and tombstones of both objects in version order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[RowHead]
    next_after: StrictInt = Field(ge=0)
    high_water: StrictInt = Field(ge=0)


class ListAnswer(BaseModel):
    """``GET /contacts/`` or ``/companies/``: rows in id order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[RowHead]
    next_after_id: StrictInt | None
    high_water: StrictInt = Field(ge=0)
