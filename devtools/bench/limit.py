"""The single-connection limit, measured rather than assumed: how many requests per second one
client gets from OurAPI when it sends them one at a time.

The nominal figure, 1 / ``--latency-ms``, leaves out what the stand-in spends on each request
beyond the latency it injects (parsing, validating, storing, answering). So the bench measures the
real figure in the same run, against an OurAPI started exactly like the other runs': one aiohttp
session, one connection, ``POST /chats/{id}/messages`` (the worker's dominant write) one after
another, for at most ``requests`` requests or ``max_seconds`` seconds, whichever comes first.

    python -m devtools.bench.limit --ourapi-url URL --out PATH [--requests N] [--max-seconds S]

runs it in a process of its own (as the bench does, so its CPU and memory are its own) and writes
a :class:`~devtools.bench.models.SingleConnection` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp

from .measure import percentile
from .models import SingleConnection

REQUESTS = 300
MAX_SECONDS = 10.0
WARMUP = 3
"""Requests sent (and counted at the stand-in) before the clock starts: the connection is open
and both sides' first-request costs are paid."""
TEXT = "Hello, thanks for waiting. Let me look into your order and get back to you."
"""A message of ordinary length: the body the worker sends most."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with session.post(url, json=body) as response:
        response.raise_for_status()
        return await response.json()


async def measure_async(
    ourapi_url: str, *, requests: int = REQUESTS, max_seconds: float = MAX_SECONDS
) -> SingleConnection:
    """Create one chat, send ``WARMUP`` messages, then time up to ``requests`` messages sent one
    at a time (stopping early once ``max_seconds`` have passed)."""
    base = ourapi_url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=1)  # one connection: one request in flight
    times: list[float] = []
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            chat = await _post(
                session,
                f"{base}/chats",
                {
                    "external_id": f"single-connection-{uuid4().hex}",
                    "started_at": _iso(time.time()),
                },
            )
            url = f"{base}/chats/{chat['chat_id']}/messages"
            for _ in range(WARMUP):
                await _post(session, url, {"sent_at": _iso(time.time()), "text": TEXT})
            started = time.perf_counter()
            deadline = started + max_seconds
            while len(times) < requests and time.perf_counter() < deadline:
                sent = time.perf_counter()
                await _post(session, url, {"sent_at": _iso(time.time()), "text": TEXT})
                times.append(time.perf_counter() - sent)
    except (aiohttp.ClientError, KeyError, TypeError) as exc:
        return _result(times, time.perf_counter() - started, f"{exc.__class__.__name__}: {exc}")
    return _result(times, time.perf_counter() - started, None)


def _result(times: list[float], elapsed: float, error: str | None) -> SingleConnection:
    n = len(times)
    return SingleConnection(
        requests=n,
        warmup=WARMUP,
        seconds=round(elapsed, 3),
        requests_per_s=round(n / elapsed, 1) if n and elapsed > 0 else 0.0,
        ms_per_request=round(elapsed / n * 1000, 2) if n else 0.0,
        p50_ms=round(percentile(times, 0.50) * 1000, 2),
        p99_ms=round(percentile(times, 0.99) * 1000, 2),
        errors=[error] if error else [],
    )


def single_connection(
    ourapi_url: str, *, requests: int = REQUESTS, max_seconds: float = MAX_SECONDS
) -> SingleConnection:
    """The single-connection limit of the OurAPI at ``ourapi_url``: requests/s and the mean ms
    per request, one request at a time. Writes one chat and ``WARMUP + requests`` messages."""
    return asyncio.run(measure_async(ourapi_url, requests=requests, max_seconds=max_seconds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.limit", description=__doc__)
    parser.add_argument("--ourapi-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    args = parser.parse_args(argv)
    result = single_connection(
        args.ourapi_url, requests=args.requests, max_seconds=args.max_seconds
    )
    args.out.write_text(result.model_dump_json())
    for error in result.errors:
        print(f"single-connection: {error}", file=sys.stderr)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
