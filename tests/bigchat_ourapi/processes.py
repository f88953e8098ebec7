"""The worker as a real subprocess (``python run.py``), and reading its state from outside."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def starts_logged(self) -> int:
        return self.log().count("worker starting") if self.log_path.exists() else 0

    async def wait_started(self, previous_starts: int, limit: float = 30) -> None:
        """Wait until this process has logged its start (its imports and settings are done)."""
        async with asyncio.timeout(limit):
            while self.starts_logged() <= previous_starts:
                if self.process.returncode is not None:
                    return
                await asyncio.sleep(0.02)

    async def wait(self, limit: float = 30) -> int:
        return await asyncio.wait_for(self.process.wait(), limit)

    async def stop(self, sig: int = signal.SIGTERM, limit: float = 20) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), limit)


async def start_worker(env: dict[str, str], log_path: Path, *args: str) -> WorkerProcess:
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "run.py"),
            *args,
            cwd=str(log_path.parent),
            env={**os.environ, "LOG_LEVEL": "INFO", **env},
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )
    return WorkerProcess(process, log_path)


def read_progress(state_db: Path) -> tuple[float, int]:
    """(cursor, pending entries) as another process sees them."""
    if not state_db.exists():
        return 0.0, 0
    with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5) as db:
        try:
            cursor = db.execute("SELECT position FROM cursors WHERE name = 'bigchat'").fetchone()
            pending = db.execute("SELECT COUNT(*) FROM inbox WHERE state = 'pending'").fetchone()
        except sqlite3.OperationalError:  # schema not created yet
            return 0.0, 0
    return (float(cursor[0]) if cursor else 0.0), int(pending[0])


async def wait_until_drained(
    worker: WorkerProcess, state_db: Path, until: float, limit: float = 90
) -> None:
    """Wait until the worker's cursor has passed ``until`` and nothing is pending."""
    async with asyncio.timeout(limit):
        calm = 0
        while True:
            if worker.process.returncode is not None:
                raise AssertionError(
                    f"worker exited {worker.process.returncode}:\n{worker.log()[-3000:]}"
                )
            cursor, pending = read_progress(state_db)
            calm = calm + 1 if cursor >= until and pending == 0 else 0
            if calm >= 3:
                return
            await asyncio.sleep(0.2)
