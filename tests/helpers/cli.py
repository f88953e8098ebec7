"""Running a stand-in's ``python -m`` in a real child process, as a user or a script would.

Every wait is bounded; a child still running when a test ends is killed, so a failing test never
leaves a server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port that was free a moment ago (the child binds it itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port bound and listening for as long as the block runs: one a stand-in cannot have."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


def answers(url: str) -> bool:
    """Whether ``GET url`` answers 200 within half a second."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run_module(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """``python -m *args`` run to its end from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@dataclass(frozen=True)
class Stopped:
    """How a served child went: when it first answered, then how it ended after the signal."""

    up_after: float | None  # seconds from start to the first 200; None: not within the limit
    returncode: int
    out: str
    err: str


def serve_then_stop(
    args: list[str], url: str, stop: signal.Signals, *, within_s: float = 10.0, poll_s: float = 0.05
) -> Stopped:
    """Start ``python -m *args``, wait (at most ``within_s``) until ``url`` answers, send ``stop``
    and collect the exit status and output (at most 10 s more). A child that never answered is
    killed rather than signalled."""
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        up_after = None
        while time.monotonic() - started < within_s:
            if answers(url):
                up_after = time.monotonic() - started
                break
            time.sleep(poll_s)
        if up_after is None:
            server.kill()
        else:
            server.send_signal(stop)
        out, err = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return Stopped(up_after, server.returncode, out, err)


@contextlib.asynccontextmanager
async def child_module(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m *args`` as an asyncio child with its output piped; killed on exit if still
    running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args,
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
