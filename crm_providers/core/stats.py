"""Request counts by (method, route template, status), and how many the limiter refused.

The sync's tests assert that the limiter answered nothing (``limited == 0``): the stand-in must
say so directly rather than leave the caller to sum statuses (a Pipedrive 403 may be a limit
answer, a Salesforce 403 always is, a HubSpot 403 never is).
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class RequestStats:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self.limited: Counter[str] = Counter()

    def record(self, method: str, route: str, status: int) -> None:
        self._counts[(method, route, status)] += 1

    def record_limited(self, policy: str) -> None:
        """One request refused by a budget; ``policy`` names the budget."""
        self.limited[policy] += 1

    def reset(self) -> None:
        self._counts.clear()
        self.limited.clear()

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def count(
        self, method: str | None = None, route: str | None = None, status: int | None = None
    ) -> int:
        return sum(
            n
            for (m, r, s), n in self._counts.items()
            if (method is None or m == method)
            and (route is None or r == route)
            and (status is None or s == status)
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "limited": sum(self.limited.values()),
            "limited_by_policy": dict(self.limited),
            "by_status": {
                str(s): self.count(status=s) for s in sorted({s for (_, _, s) in self._counts})
            },
            "requests": [
                {"method": m, "route": r, "status": s, "count": n}
                for (m, r, s), n in sorted(self._counts.items())
            ],
        }
