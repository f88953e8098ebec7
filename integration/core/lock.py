"""One worker per state file: an exclusive lock beside it, so two copies never apply the same
events. The OS drops the lock when the process dies, however it dies.

The lock file is owner-only (0600) like the state file beside it."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from .private import PRIVATE, describe, tighten

log = logging.getLogger(__name__)


class AlreadyRunning(Exception):
    pass


class StateLock:
    def __init__(self, state_path: str | Path) -> None:
        self.path = Path(f"{state_path}.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE)
        if (mode := tighten(self.path)) is not None:
            log.warning(
                "lock file was readable by others; now owner-only (0600): %s",
                describe([(self.path, mode)]),
            )
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunning(
                f"another worker (pid {holder}) is using {self.path.with_suffix('')}; "
                "stop it first, or give this one its own STATE_DB"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
