"""The ERP's folders: reading the inbound one safely, writing the outbound one atomically.

Inbound file names come from outside and are never used as paths: only names read from the
folder itself (so never with a ``/``), matching a plain pattern, of regular files directly in
it, opened without following symlinks, are read, and each read is bounded. A file is moved to
``processed/`` once applied and to ``rejected/`` (with ``<name>.error.txt`` saying why) when it
cannot be, so nothing is read twice and nothing is silently dropped.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ...core.clock import Clock, iso
from .models import ErpWorkOrder

SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}\.json")
TEMP_SUFFIX = ".tmp"
PROCESSED = "processed"
REJECTED = "rejected"
SIDECAR_SUFFIX = ".error.txt"


class FileRejected(Exception):
    """A file that can never be applied; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Candidate:
    """A directory entry worth looking at, and, if it is already known to be unusable, why."""

    name: str
    problem: str | None = None


def _natural(candidate: Candidate) -> tuple[int, int, str]:
    stem = candidate.name.removesuffix(".json")
    return (0, int(stem), "") if stem.isdigit() else (1, 0, candidate.name)


def shown(name: str) -> str:
    """A name from outside as it may appear in a log line: quoted when it holds anything but
    plain characters, so a crafted name cannot forge a line of its own."""
    return name if SAFE_NAME.fullmatch(name) else ascii(name)


def write_atomic(folder: Path, name: str, data: bytes) -> Path:
    """Write ``folder/name`` so that no reader ever sees half of it.

    A hidden temporary file in the same folder (same file system, so the rename is atomic),
    flushed to disk before it replaces the target, and the folder flushed after, so that after a
    crash the name holds either the old content or the new, never a torn one.
    """
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(
            tmp, 0o644
        )  # mkstemp's 0600 would hide the file from an ERP running as another user
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)
    return folder / name


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def explain(exc: ValidationError) -> str:
    """A file's validation errors as one line: JSON syntax, missing fields, wrong types."""
    missing: list[str] = []
    wrong: list[str] = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "json_invalid":
            return f"invalid JSON: {err.get('ctx', {}).get('error', err['msg'])}"
        if err["type"] == "model_type":
            return "not a JSON object"
        if err["type"] == "missing":
            missing.append(where)
        else:
            got = repr(err.get("input"))
            got = got if len(got) <= 40 else got[:37] + "..."
            wrong.append(f"{where}: {err['msg']} (got {got})")
    parts = []
    if missing:
        parts.append(
            f"missing required field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
        )
    if wrong:
        parts.append(f"wrong type{'s' if len(wrong) > 1 else ''}: {'; '.join(wrong)}")
    return "; ".join(parts) or "invalid work order"


def parse_order(data: bytes) -> ErpWorkOrder:
    """A file's content as a work order, or ``FileRejected`` saying why it is not one."""
    if not data.strip():
        raise FileRejected("empty file")
    try:
        return ErpWorkOrder.model_validate_json(data)
    except ValidationError as exc:
        raise FileRejected(explain(exc)) from None


class Inbox:
    """The inbound folder and its ``processed/`` and ``rejected/`` subfolders."""

    def __init__(self, folder: Path, *, max_bytes: int, clock: Clock) -> None:
        self.folder = folder
        self.processed = folder / PROCESSED
        self.rejected = folder / REJECTED
        self.max_bytes = max_bytes
        self.clock = clock

    def prepare(self) -> None:
        for folder in (self.folder, self.processed, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)

    def scan(self) -> list[Candidate]:
        """The ``*.json`` entries directly in the folder, by order number where the name is one.

        Hidden names are skipped: by convention they are files still being written.
        """
        found: list[Candidate] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.name.endswith(".json"):
                    continue
                found.append(Candidate(entry.name, self._problem(entry)))
        return sorted(found, key=_natural)

    @staticmethod
    def _problem(entry: os.DirEntry[str]) -> str | None:
        if entry.is_symlink():
            return "a symbolic link, not a regular file in the folder"
        if not entry.is_file(follow_symlinks=False):
            return "not a regular file"
        if not SAFE_NAME.fullmatch(entry.name):
            return "file name not accepted (letters, digits, '.', '_' and '-' only)"
        return None

    def read_bytes(self, name: str) -> bytes:
        """The content of ``name``, bounded, or ``FileRejected`` saying why it cannot be read
        (``FileNotFoundError`` when it vanished since the scan)."""
        if not SAFE_NAME.fullmatch(name):
            raise FileRejected("file name not accepted")
        return self._read_bounded(self.folder / name)

    def _read_bounded(self, path: Path) -> bytes:
        # O_NOFOLLOW: a symlink swapped in after the scan is refused, not followed out of the
        # folder. O_NONBLOCK: a FIFO swapped in cannot hang the worker (fstat refuses it next).
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise
        except PermissionError:
            raise FileRejected("cannot be read: permission denied") from None
        except OSError as exc:
            raise FileRejected(f"cannot be read: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FileRejected("not a regular file")
            if info.st_size > self.max_bytes:
                raise FileRejected(f"too large: {info.st_size} bytes (limit {self.max_bytes})")
            try:
                data = handle.read(self.max_bytes + 1)
            except OSError as exc:
                raise FileRejected(f"cannot be read: {exc.strerror or exc}") from None
        if len(data) > self.max_bytes:  # grew after the fstat
            raise FileRejected(f"too large: more than {self.max_bytes} bytes")
        return data

    def accept(self, name: str) -> Path:
        """Move an applied file to ``processed/``."""
        target = self._free_name(self.processed, name)
        os.replace(self.folder / name, target)
        return target

    def reject(self, name: str, reason: str) -> Path:
        """Move a file that cannot be applied to ``rejected/``, beside a sidecar saying why.

        The sidecar is written first: a crash between the two leaves the file where it was, to
        be rejected again on the next pass, never a rejected file without its reason.
        """
        target = self._free_name(self.rejected, name)
        note = f"{shown(name)}\n{reason}\nrejected at {iso(self.clock.now())}\n"
        sidecar = write_atomic(self.rejected, target.name + SIDECAR_SUFFIX, note.encode())
        try:
            os.replace(self.folder / name, target)
        except FileNotFoundError:
            sidecar.unlink(missing_ok=True)  # the ERP took it back: no reason without a file
            raise
        return target

    def _free_name(self, folder: Path, name: str) -> Path:
        """``folder/name``, or a time-stamped variant when the ERP has sent that name before, so
        an earlier file is kept rather than overwritten."""
        target = folder / name
        if not os.path.lexists(target):
            return target
        stem = name.removesuffix(".json")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock.now()))
        for attempt in range(1, 10_000):
            target = folder / f"{stem}.{stamp}-{attempt}.json"
            if not os.path.lexists(target):
                return target
        raise FileExistsError(f"no free name for {name} in {folder}")


class Outbox:
    """The outbound folder: one ``{orderNo}.json`` per work order, each written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def prepare(self) -> None:
        """Create the folder and remove temporary files a crash left behind (never read by the
        ERP, whose files are never hidden)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

    def write(self, order: ErpWorkOrder) -> Path:
        data = order.model_dump_json(indent=2).encode() + b"\n"
        return write_atomic(self.folder, f"{order.orderNo}.json", data)
