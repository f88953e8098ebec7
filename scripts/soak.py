"""Soak run: the worker for a long time at a steady event rate, against both stand-ins (with
the real BigChat's faults), sampling its memory and backlog. Not part of the test suite.

    python scripts/soak.py --minutes 30 --rate 1.5

Prints one line per sample and a summary: RSS at start and end, the backlog's range, and a
verification of every conversation that finished before the worker's cursor. 127.0.0.1 only;
bounded in time (at most 3 hours).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integration.pipelines.bigchat_ourapi.commands import verify_services  # noqa: E402
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings  # noqa: E402

FAULTS = [
    "--error-rate", "0.05", "--duplicate-rate", "0.02", "--late-rate", "0.02",
    "--repeat-end-rate", "0.1", "--missing-start-rate", "0.05", "--shuffle", "--unreplayable",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def progress(state_db: Path) -> tuple[float, int, int]:
    with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5) as db:
        cursor = db.execute("SELECT position FROM cursors WHERE name = 'bigchat'").fetchone()
        counts = dict(db.execute("SELECT state, COUNT(*) FROM inbox GROUP BY state").fetchall())
    return (cursor[0] if cursor else 0.0), counts.get("pending", 0), counts.get("done", 0)


async def finished_before(bigchat: str, cursor: float) -> list[int]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bigchat}/_standin/conversations") as r:
            listing = await r.json()
        ids = listing if isinstance(listing, list) else listing.get("conversation_ids", [])
        done = []
        for cid in ids:
            async with session.get(f"{bigchat}/conversations/{cid}") as r:
                conv = await r.json()
            times = [e["event_at"] for e in conv["events"]]
            if any(e["event_name"] == "END" for e in conv["events"]) and max(times) < cursor - 120:
                done.append(cid)
        return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1.5, help="new conversations per second")
    parser.add_argument("--sample", type=float, default=60, help="seconds between samples")
    args = parser.parse_args()
    minutes = min(args.minutes, 180)
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    bc_port, oa_port = free_port(), free_port()
    bigchat, ourapi = f"http://127.0.0.1:{bc_port}", f"http://127.0.0.1:{oa_port}"
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [py, "-m", "big_chat", "--port", str(bc_port), "--seed", "11",
             "--conversation-rate", str(args.rate), *FAULTS],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [py, "-m", "our_api", "--port", str(oa_port), "--db", str(folder / "ourapi.db"),
             "--latency-ms", "10"],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    time.sleep(1.5)
    state_db = folder / "state.db"
    worker_env = {
        **env, "BIGCHAT_URL": bigchat, "OURAPI_URL": ourapi, "STATE_DB": str(state_db),
        "POLL_INTERVAL": "5", "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen([py, str(ROOT / "run.py")], env=worker_env, stdout=log, stderr=log)
    samples: list[tuple[float, float, int, int]] = []
    started = time.monotonic()
    try:
        time.sleep(5)
        while time.monotonic() - started < minutes * 60:
            cursor, pending, done = progress(state_db)
            rss = rss_mb(worker.pid)
            elapsed = time.monotonic() - started
            samples.append((elapsed, rss, pending, done))
            print(
                f"{elapsed / 60:6.1f} min  rss {rss:6.1f} MB  backlog {pending:5d}  "
                f"applied {done:7d}  cursor lag {time.time() - cursor:5.1f} s",
                flush=True,
            )
            time.sleep(min(args.sample, max(1.0, minutes * 60 - elapsed)))
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
        cursor, _, done = progress(state_db)
        ids = asyncio.run(finished_before(bigchat, cursor))
        settings = Settings(_env_file=None, bigchat_url=bigchat, ourapi_url=ourapi)  # type: ignore[call-arg]
        report, _ = asyncio.run(verify_services(settings, ids))
    finally:
        for p in [worker, *procs]:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
    summary = {
        "minutes": round((time.monotonic() - started) / 60, 1),
        "events_applied": done,
        "rss_mb_first": round(samples[0][1], 1),
        "rss_mb_last": round(samples[-1][1], 1),
        "rss_mb_max": round(max(s[1] for s in samples), 1),
        "backlog_max": max(s[2] for s in samples),
        "backlog_last": samples[-1][2],
        "worker_exit": code,
        "verified_conversations": report.conversations,
        "verify_ok": report.ok,
        "findings": len(report.findings),
    }
    print(json.dumps(summary, indent=2))
    return 0 if report.ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
