"""The pages of the window being fetched, appended to a file the moment they arrive.

A source that serves each event once leaves one copy of a page: the worker's memory, from the
moment its last byte arrives until it is stored. The state store commits it within a millisecond
or a few (a group commit on another thread), and a process killed in that time loses it. One
``write`` system call to a file opened for appending is durable against the process dying as soon
as it returns (the data is in the operating system's cache, which outlives the process), and it
happens in the same step as the page's arrival, before anything else runs. So each page goes here
first; the engine clears the file once the window's pages are all in the state store, and at
start-up stores whatever a dead process left in it (de-duplication makes that harmless).

A power loss can still take what the operating system had not written to disk; so can it take the
state store's last transactions (see ``store.py``).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_LENGTH = struct.Struct(">Q")


class PageJournal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: pages hold every message text, like the state file beside it.
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, body: bytes) -> None:
        """One write, length first: a record cut short by a crash is recognised and skipped."""
        assert self._fd is not None, "journal is not open"
        os.write(self._fd, _LENGTH.pack(len(body)) + body)

    def records(self) -> list[bytes]:
        """The complete records in the file, oldest first."""
        data = self.path.read_bytes() if self.path.exists() else b""
        found: list[bytes] = []
        at = 0
        while at + _LENGTH.size <= len(data):
            (size,) = _LENGTH.unpack_from(data, at)
            start = at + _LENGTH.size
            if start + size > len(data):
                break  # the last write was cut short: the page never fully arrived here
            found.append(data[start : start + size])
            at = start + size
        return found

    def clear(self) -> None:
        """Everything in the journal is in the state store now."""
        assert self._fd is not None, "journal is not open"
        os.ftruncate(self._fd, 0)
