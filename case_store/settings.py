"""Settings of the case store: where it keeps data, how long tombstones live, which faults."""

from __future__ import annotations

from pydantic import Field

from standin_kit.faults import FaultRates


class FaultSettings(FaultRates):
    """Faults that can be changed while the server runs (``PATCH /_standin/faults``)."""


class CaseStoreSettings(FaultSettings):
    """Everything ``create_app`` needs; the fault fields are the initial faults."""

    db: str = Field("case_store.db", min_length=1, description='SQLite file, or ":memory:"')
    seed: int = Field(1, description="seeds the fault draws")
    tombstone_days: float = Field(
        30.0, gt=0, le=36_500, description="days a tombstone stays in the change feed"
    )

    def faults(self) -> FaultSettings:
        return FaultSettings.model_validate(
            self.model_dump(include=set(FaultSettings.model_fields))
        )
