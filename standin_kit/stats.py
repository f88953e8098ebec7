"""Request counts by (method, route template, status), for tests and benchmarks."""

from __future__ import annotations

from collections import Counter
from typing import Any


class RequestStats:
    """Counts answered requests. Routes are templates (``/cases/{case_id}``), not raw paths, so
    the counts stay few and comparable across runs."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def record(self, method: str, route: str, status: int) -> None:
        self._counts[(method, route, status)] += 1

    def reset(self) -> None:
        self._counts.clear()

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def count(self, method: str, route: str, status: int | None = None) -> int:
        """Requests to ``method route``, answered ``status`` if given, else with any status."""
        return sum(
            n
            for (m, r, s), n in self._counts.items()
            if m == method and r == route and (status is None or s == status)
        )

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: ``{"total": n, "requests": [{method, route, status, count}]}``."""
        return {
            "total": self.total,
            "requests": [
                {"method": m, "route": r, "status": s, "count": n}
                for (m, r, s), n in sorted(self._counts.items())
            ],
        }
