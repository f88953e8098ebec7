"""How the state file grows, and what pruning, status() and a /metrics scrape cost at scale.

    python scripts/growth.py [--events 1000000] [--conversations 150000] [--dir DIR]

Builds a state file directly through the store, as the BigChat pipeline fills it: the events
(real BigChat event JSON, through the pipeline's own ``to_entry``) spread over ``--span-days``
days ending now and all but the last few applied; one state per conversation in the
``conversation`` map; one ``chat`` ledger row per conversation; a few hundred agents. Then it
measures and prints a table:

- bytes per event of the file before and after a prune at RETENTION (the file keeps its size: the
  freed pages are reused by later writes; "live" counts the pages in use);
- ``status()`` median and p95 over 50 calls, and the old full-scan queries once for comparison;
- a ``/metrics`` scrape through the real endpoint (``health.create_app``, served on 127.0.0.1);
- how long the worker's other writes waited while the prune ran (its longest single batch);
- peak RSS growth of reading every conversation state with ``map_iter`` against ``map_items``,
  each in a fresh subprocess (``resource.getrusage`` ru_maxrss, after minus before the read).

Run time is bounded: building stops after ``--max-build-seconds`` with the events stored so far.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from integration.core.health import Probe, create_app  # noqa: E402
from integration.core.metrics import EngineMetrics  # noqa: E402
from integration.core.serving import serve_app  # noqa: E402
from integration.core.stats import Stats  # noqa: E402
from integration.core.store import NewEntry, SQLiteStore, dumps  # noqa: E402
from integration.pipelines.bigchat_ourapi.mapping import ConversationState, to_entry  # noqa: E402

SOURCE = "bigchat"
STATES = "conversation"
DAY = 86400.0
RETENTION = 7 * DAY
PAGE = 1000
GROUP = 500
WORDS = [
    "hello",
    "thanks",
    "order",
    "delivery",
    "refund",
    "please",
    "the",
    "a",
    "my",
    "is",
    "it",
    "when",
    "can",
    "you",
    "help",
    "account",
    "invoice",
    "package",
    "tracking",
    "number",
    "yesterday",
    "today",
    "tomorrow",
    "issue",
    "problem",
    "change",
    "address",
]

# The status() queries before the counters: what every /metrics scrape used to run.
OLD_STATUS = [
    "SELECT name, position FROM cursors",
    "SELECT state, COUNT(*) FROM inbox WHERE source = 'bigchat' GROUP BY state",
    "SELECT COUNT(*), COUNT(DISTINCT CASE WHEN blocking = 1 THEN key END)"
    " FROM dead_letters WHERE source = 'bigchat' AND resolved_at IS NULL",
    "SELECT namespace, COUNT(*) FROM maps GROUP BY namespace",
    "SELECT MIN(occurred_at) FROM inbox WHERE source = 'bigchat' AND state = 'pending'",
]


class SetClock:
    """The store's clock during the build: the time the row being written belongs to."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class Built:
    events: int
    conversations: int
    seconds: float


def fast_entry(raw: dict[str, object]) -> NewEntry:
    """The inbox entry ``to_entry`` makes of a valid event, without pydantic (checked equal on
    the first conversation): building a million of them is then a matter of seconds."""
    data = raw["data"]
    fingerprint = dumps([raw["conversation_id"], raw["event_name"], raw["event_at"], data])
    return NewEntry(
        key=str(raw["conversation_id"]),
        kind=str(raw["event_name"]),
        fingerprint=hashlib.blake2b(fingerprint.encode(), digest_size=16).hexdigest(),
        payload=json.dumps(raw, separators=(",", ":"), ensure_ascii=False),
        occurred_at=float(raw["event_at"]),  # type: ignore[arg-type]
    )


def raw_events(
    conversation_id: int, advisor: int, start: int, count: int
) -> list[dict[str, object]]:
    """One conversation's events as BigChat serves them: START, messages, a transfer, END."""
    rng = random.Random(conversation_id)
    events: list[dict[str, object]] = [
        {"conversation_id": conversation_id, "event_name": "START", "event_at": start, "data": None}
    ]
    for k in range(1, max(1, count - 1)):
        at = start + 20 * k
        if k == count // 2 and count > 4:
            data: object = {"old_advisor_id": advisor, "new_advisor_id": advisor + 1}
            events.append(
                {
                    "conversation_id": conversation_id,
                    "event_name": "TRANSFER",
                    "event_at": at,
                    "data": data,
                }
            )
            continue
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
        events.append(
            {
                "conversation_id": conversation_id,
                "event_name": "MESSAGE",
                "event_at": at,
                "data": {"message": text},
            }
        )
    if count > 1:
        at = start + 20 * (count - 1)
        events.append(
            {"conversation_id": conversation_id, "event_name": "END", "event_at": at, "data": None}
        )
    return events[:count]


async def build(
    store: SQLiteStore,
    clock: SetClock,
    events: int,
    conversations: int,
    span: float,
    pending: int,
    budget: float,
) -> Built:
    began = time.monotonic()
    now = time.time()
    first = now - span
    per = events / conversations
    stored = made = 0
    page: list[NewEntry] = []

    async def flush() -> None:
        nonlocal page, stored
        await store.store_page(SOURCE, page)
        stored += len(page)
        page = []

    puts: list[Awaitable[None]] = []
    for cid in range(1, conversations + 1):
        if time.monotonic() - began > budget:
            break
        count = int(cid * per) - int((cid - 1) * per)
        start = int(first + (cid - 1) * span / conversations)
        advisor = 1 + cid % 300
        clock.at = start
        raws = raw_events(cid, advisor, start, count)
        page += map(fast_entry, raws)
        if cid == 1:
            assert page == [to_entry(raw, now) for raw in raws], "fast_entry differs from to_entry"
        if len(page) >= PAGE:
            await flush()
        chat = uuid.UUID(int=cid)
        state = ConversationState(
            conversation_id=cid,
            advisor_id=advisor,
            started_at=start,
            start_known=True,
            agent_since=start,
            ended_at=start + 20 * (count - 1),
            chat_id=chat,
            chat_ended_at=start + 20 * (count - 1),
            chat_agent_id=uuid.UUID(int=advisor),
        )
        puts.append(store.map_put(STATES, str(cid), state.model_dump_json()))
        puts.append(store.ledger_put("chat", str(cid), "done"))
        made += 1
        if len(puts) >= GROUP:
            await asyncio.gather(*puts)  # one transaction per group, as the worker's writes
            puts = []
    if page:
        await flush()
    await asyncio.gather(*puts)
    await asyncio.gather(
        *(store.map_put("agent", str(a), str(uuid.UUID(int=a))) for a in range(1, 302))
    )
    # Applied, as the engine marks them (all but the last ``pending``).
    to_apply, applied, after = stored - pending, 0, 0
    while applied < to_apply:
        batch = await store.pending(SOURCE, after, min(2000, to_apply - applied))
        if not batch:
            break
        await store.mark_done([e.seq for e in batch])
        applied += len(batch)
        after = batch[-1].seq
    return Built(stored, made, time.monotonic() - began)


def file_figures(path: Path) -> tuple[int, int]:
    """(bytes of the file, bytes of its pages in use), after folding the WAL in."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (
            db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
    return path.stat().st_size, (pages - free) * size


def where_the_bytes_go(path: Path) -> list[tuple[str, int]]:
    """Bytes of each table and index (SQLite's dbstat), largest first; empty if not built in."""
    with sqlite3.connect(path) as db:
        try:
            found = db.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
    return [(str(name), int(size)) for name, size in found]


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])


async def timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    took = []
    for _ in range(times):
        began = time.perf_counter()
        await call()
        took.append((time.perf_counter() - began) * 1000)
    return took


def p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]


def old_status_ms(path: Path, times: int = 3) -> float:
    with sqlite3.connect(path) as db:
        took = []
        for _ in range(times):
            began = time.perf_counter()
            for sql in OLD_STATUS:
                db.execute(sql).fetchall()
            took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took)


async def scrape_ms(store: SQLiteStore, times: int) -> list[float]:
    stats = Stats()
    probe = Probe(stats, store, SetClock(time.time()), 10.0, time.time())
    app = create_app(probe, EngineMetrics(stats, store, SetClock(time.time()), SOURCE))
    async with serve_app(app) as served, aiohttp.ClientSession() as session:

        async def scrape() -> None:
            async with session.get(f"{served.url}/metrics") as resp:
                assert resp.status == 200
                await resp.read()

        await scrape()  # the first request sets up the connection
        return await timed(scrape, times)


async def prune_with_probe(store: SQLiteStore, before: float) -> tuple[int, float, float]:
    """Prune, while another writer commits small writes: (deleted, seconds, longest wait ms)."""
    waits: list[float] = []
    done = asyncio.Event()

    async def other_writer() -> None:
        n = 0
        while not done.is_set():
            began = time.perf_counter()
            await store.meta_put("growth-probe", str(n))
            waits.append((time.perf_counter() - began) * 1000)
            n += 1
            await asyncio.sleep(0.005)

    probe = asyncio.create_task(other_writer())
    began = time.perf_counter()
    deleted = await store.prune(SOURCE, before)
    took = time.perf_counter() - began
    done.set()
    await probe
    return deleted, took, max(waits, default=0.0)


def rss_child(path: Path, how: str) -> None:
    async def read() -> None:
        store = SQLiteStore(path)
        await store.open()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        count = 0
        if how == "items":
            items = await store.map_items(STATES)
            count = len(items)
        elif how == "recover":
            count = await recover_everything(store)
        else:
            async for _ in store.map_iter(STATES):
                count += 1
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        await store.close()
        print(f"{count} {(after - before) / 1024:.1f} {after / 1024:.1f}")

    asyncio.run(read())


async def recover_everything(store: SQLiteStore) -> int:
    """Run the BigChat pipeline's recovery over every conversation of the state, against a local
    BigChat that answers each /conversations/{id} at once (404: memory, not BigChat, is measured
    here). Returns how many conversations it asked for."""
    from aiohttp import ClientSession, web

    from integration.connectors.bigchat.client import BigChatClient
    from integration.connectors.ourapi.client import OurApiClient
    from integration.core.clock import SystemClock
    from integration.core.http import HttpService
    from integration.core.serving import serve_app
    from integration.pipelines.bigchat_ourapi import bigchat_flow

    asked = 0

    async def conversation(request: web.Request) -> web.Response:
        nonlocal asked
        asked += 1
        return web.json_response({"detail": "Conversation not found"}, status=404)

    app = web.Application()
    app.router.add_get("/conversations/{id}", conversation)
    async with serve_app(app) as served, ClientSession() as session:
        bigchat = BigChatClient(HttpService("bigchat", served.url, session))
        ourapi = OurApiClient(HttpService("ourapi", "http://127.0.0.1:9", session))
        flow = bigchat_flow(bigchat, ourapi, store, SystemClock(), recover_concurrency=32)
        await flow.source.recover("measured", time.time())  # type: ignore[union-attr]
    return asked


def rss_of(path: Path, how: str) -> tuple[int, float, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--dir", str(path.parent), "--rss-child", how],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


async def main(args: argparse.Namespace, folder: Path) -> None:
    path = folder / "state.db"
    if path.exists():
        raise SystemExit(f"growth: {path} exists; give an empty --dir")
    clock = SetClock(time.time())
    store = SQLiteStore(path, clock=clock)
    await store.open()
    try:
        built = await build(
            store,
            clock,
            args.events,
            args.conversations,
            args.span_days * DAY,
            args.pending,
            args.max_build_seconds,
        )
    finally:
        await store.close()
    print(
        f"built {built.events:,} events of {built.conversations:,} conversations over "
        f"{args.span_days:g} days in {built.seconds:.0f} s ({path})"
    )
    size0, live0 = file_figures(path)
    events0 = rows(path)
    parts = where_the_bytes_go(path)
    old_ms = old_status_ms(path)

    clock.at = time.time()
    store = SQLiteStore(path, clock=clock)
    await store.open()
    try:
        status_ms = await timed(lambda: store.status(SOURCE), 50)
        metrics_ms = await scrape_ms(store, 50)
        horizon = time.time() - RETENTION
        deleted, prune_s, longest_wait = await prune_with_probe(store, horizon)
        began = time.perf_counter()
        ledger = await store.ledger_prune("chat", horizon)
        ledger_s = time.perf_counter() - began
        status_after = await timed(lambda: store.status(SOURCE), 50)
        status = await store.status(SOURCE)
    finally:
        await store.close()
    size1, live1 = file_figures(path)
    events1 = rows(path)
    n_items, rss_items, peak_items = rss_of(path, "items")
    n_iter, rss_iter, peak_iter = rss_of(path, "iter")
    n_recover, rss_recover, peak_recover = rss_of(path, "recover")

    print()
    print(f"{'measure':<52} {'value':>16}")
    print("-" * 69)
    table = [
        ("inbox entries before prune", f"{events0:,}"),
        ("file bytes / event before prune", f"{size0 / max(1, events0):,.0f} B"),
        ("file size before prune", f"{size0 / 2**20:,.1f} MiB"),
        (f"prune at RETENTION ({RETENTION / DAY:g} d): entries deleted", f"{deleted:,}"),
        ("prune time (1000 per transaction)", f"{prune_s:,.1f} s"),
        ("longest wait of another write during the prune", f"{longest_wait:,.0f} ms"),
        ("ledger_prune('chat') rows deleted / time", f"{ledger:,} / {ledger_s:.1f} s"),
        ("inbox entries after prune", f"{events1:,}"),
        ("file size after prune (free pages kept for reuse)", f"{size1 / 2**20:,.1f} MiB"),
        ("live bytes / retained event after prune", f"{live1 / max(1, events1):,.0f} B"),
        ("live bytes / event before prune", f"{live0 / max(1, events0):,.0f} B"),
        (
            "status() median / p95 (50 calls)",
            f"{statistics.median(status_ms):.2f} / {p95(status_ms):.2f} ms",
        ),
        (
            "status() after prune median / p95",
            f"{statistics.median(status_after):.2f} / {p95(status_after):.2f} ms",
        ),
        ("old status() queries (full scans), median of 3", f"{old_ms:,.0f} ms"),
        (
            "/metrics scrape median / p95 (50, real server)",
            f"{statistics.median(metrics_ms):.2f} / {p95(metrics_ms):.2f} ms",
        ),
        (f"map_items({STATES!r}): {n_items:,} states, RSS growth", f"{rss_items:,.1f} MiB"),
        (f"map_iter({STATES!r}): {n_iter:,} states, RSS growth", f"{rss_iter:,.1f} MiB"),
        ("peak RSS of the child: map_items / map_iter", f"{peak_items:.0f} / {peak_iter:.0f} MiB"),
        (
            f"recovery over {n_recover:,} conversations: RSS growth / peak",
            f"{rss_recover:,.1f} / {peak_recover:.0f} MiB",
        ),
    ]
    for name, value in table:
        print(f"{name:<52} {value:>16}")
    print("-" * 69)
    print("bytes per event before the prune, by table and index (dbstat):")
    for name, size in parts:
        if size >= events0:
            print(f"  {name:<50} {size / max(1, events0):>10,.0f} B")
    print(
        f"status after prune: inbox {status.inbox}, maps {status.maps}; RSS measured in a fresh "
        "subprocess each (ru_maxrss after the read minus before it)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build a large state file and measure its size, pruning, status() and a "
        "/metrics scrape."
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events to store (default 1,000,000)"
    )
    parser.add_argument(
        "--conversations", type=int, default=150_000, help="conversations (default 150,000)"
    )
    parser.add_argument(
        "--span-days",
        type=float,
        default=10.0,
        help="the events occur over this many days ending now (default 10; RETENTION is 7)",
    )
    parser.add_argument(
        "--pending", type=int, default=2000, help="last events left unapplied (default 2000)"
    )
    parser.add_argument(
        "--max-build-seconds",
        type=float,
        default=240.0,
        help="stop building after this many seconds with what is stored (default 240)",
    )
    parser.add_argument(
        "--dir", type=Path, help="an empty folder for the state file (default: a temporary one)"
    )
    parser.add_argument(
        "--rss-child",
        choices=["items", "iter", "recover"],
        help="internal: read the states of the state file in --dir one way and print the RSS",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    if args.rss_child:
        rss_child(args.dir / "state.db", args.rss_child)
    elif args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(args, args.dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(args, Path(tmp)))


if __name__ == "__main__":
    try:
        run(parse_args())
    except KeyboardInterrupt:
        print("growth: interrupted", file=sys.stderr)
        sys.exit(130)
