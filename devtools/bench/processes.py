"""Child processes of the benchmark: the stand-ins, the worker and the naive baseline each run in
a process of their own, so the CPU and memory measured are the measured program's alone.

Every wait here is bounded in time; only 127.0.0.1 is used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def get_json(url: str, *, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post(url: str, *, timeout: float = 10.0) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=timeout):
        pass


@dataclass(frozen=True)
class Usage:
    """What the kernel accounted to a child once it was reaped."""

    exit_code: int
    cpu_s: float
    peak_rss_mb: float


def rss_mb(pid: int) -> float | None:
    """Current resident set of ``pid`` (Linux /proc), None where it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


class Child:
    """One child process, reaped with ``os.wait4`` for its CPU time and peak RSS."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
        prefix: Sequence[str] = (),
    ) -> None:
        """``env``: the child's whole environment (default: this process's); ``prefix``: a
        command the child's Python runs under (a profiler)."""
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.started_at = time.time()
        self._proc = subprocess.Popen(
            [*prefix, sys.executable, *argv],
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.usage: Usage | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def poll(self) -> Usage | None:
        """Reap the child if it has exited (without waiting)."""
        if self.usage is None:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status, rusage)
        return self.usage

    def _reaped(self, status: int, rusage: Any) -> None:
        code = os.waitstatus_to_exitcode(status)
        self._proc.returncode = code  # reaped here: Popen must not wait for it again
        self._log.close()
        self.usage = Usage(
            exit_code=code,
            cpu_s=float(rusage.ru_utime + rusage.ru_stime),
            peak_rss_mb=rusage.ru_maxrss / 1024,  # KiB on Linux
        )

    def wait(self, timeout: float) -> Usage | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll() is not None:
                return self.usage
            time.sleep(0.02)
        return self.poll()

    def stop(self, timeout: float = STOP_TIMEOUT) -> Usage:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            if self.wait(timeout) is None:
                os.kill(self.pid, signal.SIGKILL)
                self.wait(10.0)
        if self.usage is None:  # pragma: no cover - a process SIGKILL cannot stop
            raise RuntimeError(f"{self.name} (pid {self.pid}) would not exit")
        return self.usage

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class StandIn:
    """A stand-in service in a child process, on a free port, ready when it answers."""

    def __init__(self, name: str, module: str, args: Sequence[str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.child = Child(
            name,
            ["-m", module, "--host", HOST, "--port", str(self.port), *args],
            log_path=log_dir / f"{name}.log",
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                break
            try:
                get_json(f"{self.url}/_standin/stats", timeout=1.0)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.child.stop(5.0)
        raise RuntimeError(
            f"{self.child.name} did not start within {STARTUP_TIMEOUT:g} s:\n{self.child.tail()}"
        )

    def stats(self) -> Any:
        return get_json(f"{self.url}/_standin/stats")

    def stop(self) -> None:
        self.child.stop(10.0)
