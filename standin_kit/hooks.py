"""``/_standin/hooks/kill-after``: one signal to one process right after the next committed write
of one kind, before that write is answered. A crash test arms it with the worker's pid to kill
the worker in the narrowest window there is: the write is durable, its answer never arrives."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from typing import Any


@dataclass
class KillHook:
    """A write hook (``hook(op, case_id)``), disarmed until ``arm``; it fires once."""

    op: str | None = None
    pid: int | None = None
    signum: int = signal.SIGKILL
    fired: list[tuple[str, int]] = field(default_factory=list)

    def arm(self, op: str, pid: int, signum: int) -> None:
        self.op, self.pid, self.signum = op, pid, signum

    def disarm(self) -> None:
        self.op = self.pid = None

    def state(self) -> dict[str, Any]:
        """What ``GET /_standin/hooks/kill-after`` answers."""
        return {"armed": self.pid is not None, "op": self.op, "pid": self.pid, "fired": self.fired}

    def __call__(self, op: str, case_id: int) -> None:
        if self.pid is None or op != self.op:
            return
        pid, self.pid, self.op = self.pid, None, None
        self.fired.append((op, case_id))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, self.signum)
