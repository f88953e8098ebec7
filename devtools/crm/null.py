"""A provider that answers at once and keeps nothing: the CRM sync measured on its own.

``NullConnector`` implements the ``Connector`` protocol with no network behind it: a write is
answered ``ok`` with an id at once, a read finds nothing, and its one limit is out of reach. It
counts what it was asked (calls and records per our id), which is what the bench checks a run
against: every record written once, none created twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence

from integration.connectors.crm.base import (
    Dimension,
    ObjectName,
    RemoteRecord,
    Write,
    WriteResult,
)

HUGE = 10**12
"""A limit no run comes near: the budget never waits."""


class NullConnector:
    kind = "hubspot"
    """The mapping the sync uses for it (any provider's would do): HubSpot's."""
    max_batch = 100

    def __init__(self) -> None:
        self.upsert_calls = 0
        self.records_written = 0
        self.created: Counter[str] = Counter()
        """Creates (a write without a provider id) per our id: 1 each in a correct run."""
        self.updated: Counter[str] = Counter()
        self.delete_calls = 0
        self._ids: dict[str, str] = {}

    def dimensions(self) -> Sequence[Dimension]:
        return (Dimension("null", HUGE, 1.0),)

    async def changed_since(
        self, object: ObjectName, since: float | None
    ) -> AsyncIterator[list[RemoteRecord]]:
        return
        yield  # an async generator that yields nothing

    async def get(self, object: ObjectName, ids: Sequence[str]) -> list[RemoteRecord | None]:
        return [None for _ in ids]

    async def upsert(self, object: ObjectName, writes: Sequence[Write]) -> list[WriteResult]:
        self.upsert_calls += 1
        self.records_written += len(writes)
        results = []
        for write in writes:
            if write.provider_id is None:
                created = write.our_id not in self._ids
                if created:
                    self._ids[write.our_id] = f"null-{len(self._ids) + 1}"
                self.created[write.our_id] += 1
                provider_id = self._ids[write.our_id]
            else:
                created = False
                self.updated[write.our_id] += 1
                provider_id = write.provider_id
            results.append(WriteResult(ok=True, provider_id=provider_id, created=created))
        return results

    async def delete(self, object: ObjectName, ids: Sequence[str]) -> list[WriteResult]:
        self.delete_calls += 1
        return [WriteResult(ok=True, provider_id=i) for i in ids]

    def is_ours(self, record: RemoteRecord) -> bool | None:
        return None
