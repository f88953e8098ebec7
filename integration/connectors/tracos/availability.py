"""Whether MongoDB is answering, as last seen, told once per change.

A service that is down may stay down for hours; every failed call saying so would bury the log.
So the change is what is logged: "not answering" once (WARNING) when it stops, "answering again"
once (INFO) when it is back, with where it points and which setting to check. The individual
retries in between are DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("integration.tracos")


class Availability:
    def __init__(
        self, where: str = "MongoDB", *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.where = where
        """What to name in a log line: ``MongoDB at mongodb://host:27017 (MONGO_URI)``."""
        self._monotonic = monotonic
        self._down_since: float | None = None

    def failing(self, reason: str, *, waited: float = 0.0) -> None:
        """A call found MongoDB not answering after waiting ``waited`` seconds for it; said
        once per outage."""
        if self._down_since is not None:
            return
        self._down_since = self._monotonic() - waited
        log.warning(
            "%s is not answering: %s; retrying (each retry is logged at DEBUG)",
            self.where,
            reason,
        )

    def answering(self) -> None:
        """A call succeeded; if MongoDB had been down, say it is back, once."""
        if self._down_since is None:
            return
        took = self._monotonic() - self._down_since
        self._down_since = None
        log.info("%s is answering again (it was not for %.1f s)", self.where, took)
