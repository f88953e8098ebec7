"""Reading a run's outcome: the worker's STATE_DB (read-only, beside the running worker), lag and
throughput from applied events, and the checks that make a fast wrong run a failure."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .models import Applied, OurApiStats, Workload

SOURCE = "bigchat"


@dataclass(frozen=True)
class Progress:
    cursor: float | None
    pending: int
    done: int
    dead: int

    def drained(self, workload: Workload) -> bool:
        """Everything fetched (the cursor is past the workload) and nothing left to apply."""
        return self.cursor is not None and self.cursor >= workload.end and self.pending == 0


@contextmanager
def _connect(state_db: Path) -> Iterator[sqlite3.Connection]:
    """Read-only: the bench must not take the writer's lock from the running worker."""
    with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5.0)) as db:
        yield db


def progress(state_db: Path) -> Progress | None:
    """The worker's progress, or None while its state does not exist yet."""
    if not state_db.exists():
        return None
    try:
        with _connect(state_db) as db:
            row = db.execute("SELECT position FROM cursors WHERE name = ?", (SOURCE,)).fetchone()
            counts = dict(
                db.execute(
                    "SELECT state, COUNT(*) FROM inbox WHERE source = ? GROUP BY state", (SOURCE,)
                ).fetchall()
            )
    except sqlite3.OperationalError:  # schema not created yet
        return None
    return Progress(
        cursor=float(row[0]) if row else None,
        pending=int(counts.get("pending", 0)),
        done=int(counts.get("done", 0)),
        dead=int(counts.get("dead", 0)),
    )


def applied_events(state_db: Path) -> list[Applied]:
    with _connect(state_db) as db:
        rows = db.execute(
            "SELECT occurred_at, finished_at FROM inbox"
            " WHERE source = ? AND state = 'done' ORDER BY finished_at",
            (SOURCE,),
        ).fetchall()
    return [Applied(event_at=float(r[0]), finished_at=float(r[1])) for r in rows]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Throughput:
    events: int
    events_per_s: float
    lag_p50_s: float
    lag_p99_s: float


def throughput(applied: Sequence[Applied], run_start: float) -> Throughput:
    """Events/s from the first applied event to the last; lag is ``finished_at - max(event_at,
    run_start)``: the backlog is pre-generated, so lag counts from when the run began."""
    if not applied:
        return Throughput(0, 0.0, 0.0, 0.0)
    finished = sorted(a.finished_at for a in applied)
    span = finished[-1] - finished[0]
    rate = (len(finished) - 1) / span if span > 0 else 0.0
    lags = [a.finished_at - max(a.event_at, run_start) for a in applied]
    return Throughput(len(applied), rate, percentile(lags, 0.50), percentile(lags, 0.99))


# -- the null sink stores nothing: check the writes it was sent instead -------------------------

CHATS = "/chats"
CHAT = "/chats/{chat_id}"
MESSAGES = "/chats/{chat_id}/messages"
AGENTS = "/agents"


def by_route(stats: OurApiStats) -> dict[str, int]:
    """``"POST /chats 201": n``: the request counts in a readable form."""
    return {f"{r.method} {r.route} {r.status}": r.count for r in stats.requests}


def null_sink_findings(stats: OurApiStats, workload: Workload) -> list[str]:
    """What is wrong with the writes a null sink received for ``workload`` (empty: nothing).

    Creates must match the workload exactly (a chat per conversation, a message per MESSAGE, an
    agent per advisor assigned); chat updates must not exceed one per TRANSFER or END (the state
    changes the workload holds); and no request may have failed."""
    findings: list[str] = []
    exact = [
        ("POST", CHATS, workload.conversations, "chats created", "conversations"),
        ("POST", MESSAGES, workload.messages, "messages posted", "MESSAGE events"),
        ("POST", AGENTS, workload.advisors, "agents created", "advisors assigned"),
    ]
    for method, route, want, what, of in exact:
        got = stats.count(method, route)
        if got != want:
            findings.append(f"{what}: {got} != {want} {of}")
    patches = stats.count("PATCH", CHAT)
    if patches > workload.transfers + workload.ends:
        findings.append(
            f"chat updates: {patches} > {workload.transfers} TRANSFER + {workload.ends} END events"
        )
    failed = sum(r.count for r in stats.requests if r.status >= 300)
    if failed:
        findings.append(f"{failed} request(s) answered >= 300")
    return findings
