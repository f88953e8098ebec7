"""Request counts by route and status, for tests and for judging a client's politeness."""

from __future__ import annotations

from collections import Counter
from typing import Any


class RequestStats:
    """Counts contract requests (``/_standin/`` ones are left out) by route and status."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()

    def record(self, route: str, status: int) -> None:
        self._counts[(route, status)] += 1

    def count(self, route: str | None = None, status: int | None = None) -> int:
        return sum(
            n
            for (r, s), n in self._counts.items()
            if (route is None or r == route) and (status is None or s == status)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.count(),
            "by_route": [
                {"route": r, "status": s, "count": n} for (r, s), n in sorted(self._counts.items())
            ],
        }
