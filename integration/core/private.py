"""State files readable by their owner only: they hold every message text the worker has seen.

A file is created with mode 0600 before anything else opens it (SQLite, once the file exists,
creates its -wal and -shm files with the same mode). A file that already exists with a wider
mode is tightened, and the caller says so once in the log.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE = 0o600


def create_private(path: Path) -> int | None:
    """Create ``path`` empty with mode 0600 if it does not exist; otherwise tighten it (see
    ``tighten``). Returns the mode it had when it was wider than the owner's, else None."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return tighten(path)
    os.close(fd)
    return None


def tighten(path: Path) -> int | None:
    """Take the group's and others' permissions off ``path``, if it exists and has any.
    Returns the mode it had before, or None when nothing changed."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    os.chmod(path, mode & 0o700)
    return mode


def describe(tightened: list[tuple[Path, int]]) -> str:
    """One log line's worth: ``a.db (was 0644), a.db-wal (was 0664)``."""
    return ", ".join(f"{path} (was {mode:04o})" for path, mode in tightened)
