"""The CRM bench's world: our internal system and the HubSpot stand-in, each a child process on a
free 127.0.0.1 port (``--port 0``, the URL read from its ready line), the workload a person makes
in our system, and the check of what reached HubSpot.

Every wait is bounded in time; only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from devtools.bench.distributed import cpu_seconds
from devtools.bench.processes import HOST, Child, get_json

STARTUP_TIMEOUT = 20.0
READY = re.compile(r"listening on (http://\S+)")
UNLIMITED = "1000000000"
"""HubSpot's limits raised out of reach: the bench measures the sync, not the provider's limit."""
PEOPLE = 16
"""Requests a person's workload has in flight at once (creates, edits)."""


class Served:
    """A stand-in in a child process; ready when its ready line names its URL."""

    def __init__(self, name: str, argv: Sequence[str], directory: Path) -> None:
        self.name = name
        self.child = Child(name, argv, log_path=directory / f"{name}.log")
        self.url = self._ready_url()

    def _ready_url(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            found = READY.search(self.child.log_path.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.child.poll() is not None:
                break
            time.sleep(0.05)
        self.child.stop(5.0)
        raise RuntimeError(
            f"{self.name} did not start within {STARTUP_TIMEOUT:g} s:\n{self.child.tail()}"
        )

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = get_json(f"{self.url}/_standin/stats")
        return stats

    def cpu(self) -> float:
        return cpu_seconds(self.child.pid) or 0.0

    def state(self) -> str:
        """Whether it still runs, for a failure's account."""
        usage = self.child.poll()
        if usage is None:
            return f"{self.name} at {self.url} running"
        return f"{self.name} at {self.url} exited {usage.exit_code}: {self.child.tail(5)}"

    def stop(self) -> None:
        self.child.stop(10.0)


def internal(directory: Path, name: str = "internal") -> Served:
    return Served(
        name,
        [
            "-m",
            "crm_internal",
            "--host",
            HOST,
            "--port",
            "0",
            "--db",
            str(directory / f"{name}.db"),
        ],
        directory,
    )


def hubspot(directory: Path, name: str = "hubspot", latency_ms: float = 0.0) -> Served:
    return Served(
        name,
        [
            "-m", "crm_providers", "hubspot", "--host", HOST, "--port", "0",
            "--burst-limit", UNLIMITED, "--daily-limit", UNLIMITED,
            "--search-per-second", UNLIMITED, "--latency-ms", f"{latency_ms:g}",
        ],
        directory,
    )  # fmt: skip


def connection_limits() -> str:
    """The connection's own budget (the sync's view of the account), raised to match."""
    return (
        f"limits = {{ burst = {UNLIMITED}, daily = {UNLIMITED}, search_per_second = {UNLIMITED} }}"
    )


def connections_file(path: Path, internal_url: str, hubspot_url: str) -> Path:
    path.write_text(
        "\n".join(
            [
                f'internal_url = "{internal_url}"',
                "",
                "[[connections]]",
                'name = "hubspot"',
                'provider = "hubspot"',
                f'url = "{hubspot_url}"',
                connection_limits(),
                "",
            ]
        )
    )
    return path


# -- the workload: a person in our system ----------------------------------------------------


def contact(i: int) -> dict[str, Any]:
    return {
        "first_name": f"First{i}",
        "last_name": f"Last{i}",
        "email": f"c{i}@bench.example",
        "phone": f"+1555{i:07d}",
    }


def edit(i: int, k: int) -> dict[str, Any]:
    return {"first_name": f"First{i}-edit{k}"}


async def _send(
    session: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with session.request(method, url, json=body) as response:
        raw = await response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status} {raw[:300]!r}")
        answer: dict[str, Any] = await response.json()
        return answer


async def create_contacts(session: aiohttp.ClientSession, url: str, n: int) -> list[int]:
    """N contacts created in our system, ``PEOPLE`` at a time; their ids in order."""
    gate = asyncio.Semaphore(PEOPLE)

    async def one(i: int) -> int:
        async with gate:
            return int((await _send(session, "POST", f"{url}/contacts/", contact(i)))["id"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def edit_contacts(
    session: aiohttp.ClientSession, url: str, ids: Sequence[int], edits: int
) -> int:
    """Each contact edited ``edits`` times in a row (a person correcting a record a few times),
    ``PEOPLE`` contacts at once; the edits made."""
    gate = asyncio.Semaphore(PEOPLE)

    async def one(i: int, our_id: int) -> None:
        async with gate:
            for k in range(1, edits + 1):
                await _send(session, "PATCH", f"{url}/contacts/{our_id}", edit(i, k))

    await asyncio.gather(*(one(i, our_id) for i, our_id in enumerate(ids)))
    return len(ids) * edits


async def ours(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """Our system's live contacts, as they are now (from ``/_standin/records``: uncounted, so
    the sync's requests can be told from the bench's)."""
    async with session.get(f"{url}/_standin/records") as response:
        response.raise_for_status()
        truth = await response.json()
    return [r for r in truth["contacts"] if not r["deleted"]]


# -- the check ---------------------------------------------------------------------------------

CHECKED = {"firstname": "first_name", "lastname": "last_name", "email": "email"}


async def hubspot_contacts(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """HubSpot's truth: its live contacts."""
    async with session.get(f"{url}/_standin/records", params={"object": "contacts"}) as response:
        response.raise_for_status()
        dump = await response.json()
    return [r for r in dump["objects"].get("contacts", []) if not r["deleted"]]


def findings(our_rows: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]]) -> list[str]:
    """What is wrong with HubSpot's contacts against ours (empty: nothing): every contact of ours
    there exactly once (by its ``our_id``), none there that is not ours, and each one's checked
    fields equal to ours now."""
    problems: list[str] = []
    by_ours = Counter(str(r["fields"].get("our_id")) for r in theirs)
    wanted = {str(r["id"]): r for r in our_rows}
    missing = [i for i in wanted if i not in by_ours]
    doubles = sorted(i for i, n in by_ours.items() if n > 1)
    strays = sorted(i for i in by_ours if i not in wanted)
    if missing:
        problems.append(f"{len(missing)} of {len(wanted)} contact(s) not at HubSpot: {missing[:5]}")
    if doubles:
        problems.append(f"{len(doubles)} contact(s) at HubSpot more than once: {doubles[:5]}")
    if strays:
        problems.append(f"{len(strays)} HubSpot contact(s) not ours: {strays[:5]}")
    stale = []
    for record in theirs:
        row = wanted.get(str(record["fields"].get("our_id")))
        if row is None:
            continue
        for prop, name in CHECKED.items():
            if (record["fields"].get(prop) or None) != (row.get(name) or None):
                stale.append(f"{row['id']}.{name}: {record['fields'].get(prop)!r} != {row[name]!r}")
                break
    if stale:
        problems.append(f"{len(stale)} contact(s) differ from ours: {stale[:3]}")
    return problems


async def agree(session: aiohttp.ClientSession, internal_url: str, hubspot_url: str) -> list[str]:
    return findings(await ours(session, internal_url), await hubspot_contacts(session, hubspot_url))


def requests_by_route(stats: dict[str, Any]) -> dict[str, int]:
    return {f"{r['method']} {r['route']} {r['status']}": int(r["count"]) for r in stats["requests"]}
