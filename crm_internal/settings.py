"""Settings of our internal system's stand-in: where it keeps data, which faults."""

from __future__ import annotations

from pydantic import Field

from standin_kit.faults import FaultRates


class FaultSettings(FaultRates):
    """Faults that can be changed while the server runs (``PATCH /_standin/faults``)."""


class CrmInternalSettings(FaultSettings):
    """Everything ``create_app`` needs; the fault fields are the initial faults."""

    db: str = Field("crm_internal.db", min_length=1, description='SQLite file, or ":memory:"')
    seed: int = Field(1, description="seeds the fault draws")

    def faults(self) -> FaultSettings:
        return FaultSettings.model_validate(
            self.model_dump(include=set(FaultSettings.model_fields))
        )
