"""The baseline: Intempus ⇄ case store written the way such integrations usually are, a full scan
every pass.

Each pass lists every case on both sides in full (Intempus by cursor pages, the case store by
id pages), pairs them by the local row's ``intempus_id``, and writes whatever differs, whole
case, Intempus winning: a case only in Intempus is created locally (``intempus_id`` set), a
local case without ``intempus_id`` is created in Intempus and then linked, and a linked pair
that differs gets Intempus's fields written locally. It keeps no state, so it cannot tell which
side changed a field: a local edit of a linked case is overwritten. It handles no deletes and no
faults, which is all it is asked to do: be the yardstick.

    python -m devtools.intempus.naive --intempus-url URL --case-store-url URL --out PATH \
        [--passes N]

Pages are the services' default sizes (Intempus 1000, the case store 500), as a client that
does not tune them gets. It runs passes until one writes nothing (at most ``--passes``) and
writes, per pass, the requests it made to each side, the writes among them and the cases it
read, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from integration.pipelines.intempus_cases.mapping import (
    differs,
    from_intempus,
    from_local,
    to_intempus,
    to_local,
)
from intempus.settings import DEFAULT_API_KEY, DEFAULT_USER

ORIGIN = {"X-Sync-Origin": "naive"}


class Naive:
    def __init__(self, http: aiohttp.ClientSession, intempus: str, local: str) -> None:
        self.http = http
        self.intempus = intempus.rstrip("/")
        self.local = local.rstrip("/")
        self.auth = {"Authorization": f"ApiKey {DEFAULT_USER}:{DEFAULT_API_KEY}"}
        self.requests = {"intempus": 0, "local": 0}
        self.writes = 0
        self.rows = 0
        """Cases the listings returned: what a pass reads, changed or not."""

    async def _call(
        self, side: str, method: str, url: str, body: dict[str, Any] | None = None
    ) -> Any:
        self.requests[side] += 1
        if method != "GET":
            self.writes += 1
        headers = self.auth if side == "intempus" else ORIGIN
        async with self.http.request(method, url, json=body, headers=headers) as response:
            response.raise_for_status()
            return await response.json()

    async def intempus_cases(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        url: str | None = "/web/v1/case/?pagination_type=cursor"
        while url is not None:
            doc = await self._call("intempus", "GET", f"{self.intempus}{url}")
            rows.extend(doc["objects"])
            self.rows += len(doc["objects"])
            url = doc["meta"]["next"]
        return rows

    async def local_cases(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            doc = await self._call("local", "GET", f"{self.local}/cases/?after_id={after}")
            rows.extend(doc["items"])
            self.rows += len(doc["items"])
            after = doc["next_after_id"]
        return rows

    async def one_pass(self) -> None:
        remote = {int(row["id"]): row for row in await self.intempus_cases()}
        local = await self.local_cases()
        linked = {int(row["intempus_id"]): row for row in local if row["intempus_id"] is not None}
        for iid, irow in remote.items():
            fields = from_intempus(irow)
            lrow = linked.get(iid)
            if lrow is None:
                await self._call(
                    "local",
                    "POST",
                    f"{self.local}/cases/",
                    {**to_local(fields), "intempus_id": iid},
                )
            elif differs(fields, from_local(lrow)):
                await self._call(
                    "local", "PATCH", f"{self.local}/cases/{lrow['id']}", to_local(fields)
                )
        for lrow in local:
            if lrow["intempus_id"] is not None:
                continue
            body = {**to_intempus(from_local(lrow)), "creation_id": f"naive:{lrow['id']}"}
            created = await self._call("intempus", "POST", f"{self.intempus}/web/v1/case/", body)
            await self._call(
                "local", "PATCH", f"{self.local}/cases/{lrow['id']}", {"intempus_id": created["id"]}
            )


async def run(intempus: str, local: str, passes: int) -> list[dict[str, int]]:
    done: list[dict[str, int]] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(passes):
            naive = Naive(http, intempus, local)
            await naive.one_pass()
            done.append({**naive.requests, "writes": naive.writes, "rows": naive.rows})
            if naive.writes == 0:
                break
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.intempus.naive")
    parser.add_argument("--intempus-url", required=True)
    parser.add_argument("--case-store-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args(argv)
    passes = asyncio.run(run(args.intempus_url, args.case_store_url, args.passes))
    args.out.write_text(json.dumps({"passes": passes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
