"""No secret reaches the log: a password in a service URL is masked wherever the URL is shown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the worker as a process

ROOT = Path(__file__).resolve().parents[2]


async def test_the_bigchat_password_never_appears_in_the_log(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BIGCHAT_URL": "http://reader:s3cret-pw@127.0.0.1:9",  # nothing listens: it fails, too
        "OURAPI_URL": "http://writer:other-pw@127.0.0.1:9",
        "STATE_DB": str(tmp_path / "state.db"),
        "POLL_INTERVAL": "0.2",
        "LOG_LEVEL": "DEBUG",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), env=env, cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    seen = b""
    async with asyncio.timeout(30):
        # Until its first poll has failed (the URLs are in that line and before it), not
        # for a fixed time: a busy machine takes longer to start.
        while b"poll failed" not in seen and not process.stdout.at_eof():
            seen += await process.stdout.readline()
    process.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    log = (seen + out).decode(errors="replace")

    assert "worker starting" in log
    assert "s3cret-pw" not in log and "other-pw" not in log
    assert "reader:***@" in log
