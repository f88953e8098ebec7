"""Measure the OurAPI stand-in's write throughput: POST /chats/{id}/messages, 32 clients.

Starts ``python -m our_api`` as a subprocess on a free 127.0.0.1 port with a temporary database,
creates one chat, then has N concurrent aiohttp clients post messages until the duration is up or
the request cap is reached, and prints requests/s, errors and p50/p99 latency.

    python scripts/load_our_api.py [--duration 10] [--clients 32] [--max-requests 200000]

Every loop is bounded in time and count; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HARD_CAP_SECONDS = 20.0
STARTUP_TIMEOUT = 5.0
HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def wait_until_up(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/_standin/stats") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the stand-in did not answer within {STARTUP_TIMEOUT} s")


async def client(
    session: aiohttp.ClientSession,
    url: str,
    deadline: float,
    budget: list[int],
    latencies: list[float],
    errors: list[str],
) -> None:
    body = {"sent_at": "2024-05-01T03:00:00Z", "text": "hello there", "agent_id": None}
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        started = time.perf_counter()
        try:
            async with session.post(url, json=body) as response:
                await response.read()
                if response.status != 200:
                    errors.append(f"status {response.status}")
        except aiohttp.ClientError as error:
            errors.append(type(error).__name__)
        latencies.append(time.perf_counter() - started)


async def run(args: argparse.Namespace, url: str) -> None:
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await wait_until_up(session, url)
        async with session.post(
            f"{url}/chats", json={"external_id": "load", "started_at": "2024-05-01T00:00:00Z"}
        ) as response:
            response.raise_for_status()
            chat_id = (await response.json())["chat_id"]
        target = f"{url}/chats/{chat_id}/messages"
        latencies: list[float] = []
        errors: list[str] = []
        budget = [args.max_requests]
        started = time.monotonic()
        deadline = started + min(args.duration, HARD_CAP_SECONDS)
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    client(session, target, deadline, budget, latencies, errors)
                    for _ in range(args.clients)
                )
            ),
            timeout=HARD_CAP_SECONDS + 10,
        )
        elapsed = time.monotonic() - started
        async with session.get(f"{url}/chats/{chat_id}/messages") as response:
            stored = len(await response.json())
    done = len(latencies)
    quantiles = statistics.quantiles(latencies, n=100) if done >= 2 else [0.0] * 99
    print(
        f"POST /chats/{{id}}/messages, {args.clients} clients, {elapsed:.1f} s: "
        f"{done / elapsed:.0f} requests/s, {done} requests, {len(errors)} errors, "
        f"p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms, "
        f"{stored} messages stored"
    )
    if errors:
        print(f"first errors: {errors[:5]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (capped at 20)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--null-sink", action="store_true", help="benchmark with nothing stored")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="load_our_api_") as folder:
        command = [sys.executable, "-m", "our_api", "--host", HOST, "--port", str(port)]
        command += ["--db", os.path.join(folder, "load.db")]
        if args.null_sink:
            command.append("--null-sink")
        server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
        try:
            asyncio.run(run(args, f"http://{HOST}:{port}"))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
