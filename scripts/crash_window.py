"""How long is a page exposed between arriving and being stored? Not part of the test suite.

    python scripts/crash_window.py --trials 20 --delays 0,1,2,5,10

Against a BigChat that serves each event once and keeps no history (``live``,
``history_mode=start_only``), the only copy of a page the worker has received is in its memory
until the page is stored. This measures that window two ways:

- **timed**: the worker, run in this process against the stand-in, records for every page the
  time from the moment its body was read off the socket (and its envelope parsed) to the commit
  of the page as received; median, p99 and max over all pages;
- **killed**: the worker as a real process, SIGKILLed ``d`` ms after BigChat wrote the last byte
  of a page, ``--trials`` times per delay; then the events BigChat served are compared with what
  the state file holds (inbox rows and pages stored as received). A lost page is one whose events
  are in neither. 127.0.0.1 only, bounded in trials and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from big_chat.app import FAULTS, PAGE_HOOKS  # noqa: E402
from big_chat.app import create_app as create_bigchat  # noqa: E402
from big_chat.settings import BigChatSettings  # noqa: E402
from integration.connectors.bigchat.client import BigChatClient  # noqa: E402
from integration.core.journal import PageJournal  # noqa: E402
from integration.core.serving import serve_app  # noqa: E402
from integration.core.store import SQLiteStore  # noqa: E402

WORLD = {
    "seed": 5,
    "live": True,
    "history_mode": "start_only",
    "history": 600,
    "conversation_rate": 2.0,
    "page_size": 20,
}


def stored_events(state_db: Path) -> int:
    """Events other than STARTs the worker kept: inbox rows, the events of pages stored as
    received, and of pages in its journal (all three are stored at its next start). STARTs are
    left out: the worker also takes them from /conversations."""
    journal = PageJournal(f"{state_db}.pages")
    journaled = {
        json.dumps(e, sort_keys=True)
        for body in journal.records()
        for e in json.loads(body)["events"]
        if e.get("event_name") != "START"
    }
    if not state_db.exists():
        return len(journaled)
    with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5) as db:
        try:
            rows = db.execute(
                "SELECT payload FROM inbox WHERE kind NOT IN ('invalid', 'START')"
            ).fetchall()
            bodies = db.execute("SELECT body FROM received").fetchall()
        except sqlite3.OperationalError:
            return len(journaled)
    kept = {json.dumps(json.loads(payload), sort_keys=True) for (payload,) in rows}
    kept |= {
        json.dumps(e, sort_keys=True)
        for (body,) in bodies
        for e in json.loads(body)["events"]
        if e.get("event_name") != "START"
    }
    return len(kept | journaled)


def served_events(app: Any) -> int:
    """Events other than STARTs BigChat has served (a script's position 0 is its START)."""
    return sum(position > 0 for _, position in app[FAULTS]._served)


async def one_kill(delay_ms: float, folder: Path) -> tuple[int, int]:
    """(events served, events stored) when the worker dies ``delay_ms`` after a page."""
    app = create_bigchat(BigChatSettings(**WORLD))
    armed = False

    @web.middleware
    async def hold_after_kill(request: web.Request, handler: Any) -> web.StreamResponse:
        # Once the page to die after is out, no further page is served: the kill must be
        # judged on that page alone, not on one the worker asked for meanwhile.
        if armed and request.path == "/events":
            await asyncio.sleep(60)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(hold_after_kill)
    async with serve_app(app) as served:
        env = {
            **os.environ,
            "BIGCHAT_URL": served.url,
            "OURAPI_URL": "http://127.0.0.1:9",  # nothing is applied: only fetching matters
            "STATE_DB": str(folder / "state.db"),
            "START_AT": str(time.time() - float(WORLD["history"])),
            "POLL_INTERVAL": "0.2",
            "POLL_LAG": "0",
            "LOG_LEVEL": "WARNING",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "run.py"), env=env, cwd=str(folder),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        pages = 0

        def after_page(window: Any, page: int, events: int, now: float) -> None:
            nonlocal pages, armed
            pages += 1
            if pages == 3 and process.returncode is None:  # well into its work
                armed = True
                asyncio.get_running_loop().call_later(
                    delay_ms / 1000, lambda: process.returncode is None and process.kill()
                )

        app[PAGE_HOOKS].on_page_served = after_page
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
        return served_events(app), stored_events(folder / "state.db")


async def timed(pages_wanted: int) -> list[float]:
    """Milliseconds from a page's body read to its commit as received, page by page."""
    from integration.core.shell import open_engine
    from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
    from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings

    app = create_bigchat(BigChatSettings(**{**WORLD, "history": 3600}))
    gaps: list[float] = []
    read_at: list[float] = []
    original_page = BigChatClient._page
    original_receive = SQLiteStore.receive

    async def page(self: BigChatClient, url: Any) -> Any:
        result = await original_page(self, url)
        read_at.append(time.perf_counter())
        return result

    async def receive(self: SQLiteStore, source: str, body: bytes) -> int:
        result = await original_receive(self, source, body)
        gaps.append((time.perf_counter() - read_at[-1]) * 1000)
        return result

    BigChatClient._page = page  # type: ignore[method-assign]
    SQLiteStore.receive = receive  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with serve_app(app) as served:
                settings = Settings(
                    _env_file=None,  # type: ignore[call-arg]
                    bigchat_url=served.url,
                    ourapi_url="http://127.0.0.1:9",
                    state_db=Path(folder) / "state.db",
                    start_at=time.time() - 3600,
                    poll_interval=0.05,
                    poll_lag=0,
                    max_window=60,
                )
                stopping = asyncio.Event()
                async with open_engine(BIGCHAT, settings) as engine:
                    task = asyncio.create_task(engine.run(stopping))
                    async with asyncio.timeout(120):
                        while len(gaps) < pages_wanted:  # noqa: ASYNC110 - a sampled count
                            await asyncio.sleep(0.05)
                    stopping.set()
                    await task
    finally:
        BigChatClient._page = original_page  # type: ignore[method-assign]
        SQLiteStore.receive = original_receive  # type: ignore[method-assign]
    return gaps


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="kills per delay (default 20)")
    parser.add_argument(
        "--delays",
        default="0,1,2,5,10",
        help="ms after a page, comma-separated (default 0,1,2,5,10)",
    )
    parser.add_argument("--pages", type=int, default=300, help="pages timed (default 300)")
    args = parser.parse_args()
    trials = max(1, min(args.trials, 100))

    gaps = await timed(min(args.pages, 2000))
    print(
        f"timed: {len(gaps)} pages, body read -> stored as received: median "
        f"{statistics.median(gaps):.2f} ms, p99 {percentile(gaps, 0.99):.2f} ms, "
        f"max {max(gaps):.2f} ms"
    )
    print(f"{'delay ms':>9}  {'kills':>5}  {'pages lost':>10}  {'events lost':>11}")
    for delay in [float(d) for d in args.delays.split(",")]:
        lost_pages = lost_events = 0
        for _ in range(trials):
            with tempfile.TemporaryDirectory() as folder:
                served, stored = await one_kill(delay, Path(folder))
            lost_events += max(0, served - stored)
            lost_pages += served > stored
        print(f"{delay:>9g}  {trials:>5}  {lost_pages:>10}  {lost_events:>11}")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    asyncio.run(main())
