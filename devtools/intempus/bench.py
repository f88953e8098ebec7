"""``python run.py intempus bench``: the sync against a naive full-scan-every-pass integration,
measured in one run.

For each of the two, on fresh stand-ins in child processes (Intempus with its rate limit OFF, so
the measurement is of the integrations, not of the limit; the sync's own request budget is
raised to match): sample cases on both sides, made to agree by the integration under test (not
measured); then a workload of N changes spread over both sides (a quarter each: creates in
Intempus, creates locally, edits in Intempus, edits locally, every edit on a different case);
then the measurement: the integration brings both sides into agreement (the sync with
``--once``, the naive loop until a pass writes nothing), counted by the stand-ins'
``/_standin/stats``; both sides are checked to agree; and one more pass over unchanged data
measures what an idle pass costs (for the sync, the pass after the one that reads the echoes
of its own writes). A table of both runs and their ratios follows.
Exit status 1 if a run failed or its sides did not agree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from devtools.bench.processes import REPO, Child, StandIn, get_json, post
from integration.pipelines.intempus_cases.mapping import from_local
from intempus.settings import DEFAULT_API_KEY, DEFAULT_USER

from .agreement import disagreements
from .edits import case_fields, edit_fields, for_intempus

DESCRIPTION = "The sync against a naive integration, measured in one run.\n\n" + (
    __doc__.split("\n\n", 1)[1].replace("``", "") if __doc__ else ""
)
"""The help: the module docstring, its first paragraph (which names the command in docstring
markup) said plainly."""
DEFAULT_CHANGES = 2_000
QUICK_CHANGES = 300
SEED = 1
RUN_TIMEOUT = 600.0
"""Seconds one integration run may take before the bench calls it failed."""


@dataclass
class Workload:
    """N changes: ``changes // 4`` of each kind; the sample cases are the edits' targets."""

    changes: int
    seed: int = SEED

    @property
    def per_kind(self) -> int:
        return max(1, self.changes // 4)

    @property
    def total(self) -> int:
        return 4 * self.per_kind

    @property
    def sample_per_side(self) -> int:
        """Sample cases on each side: one edit each (both sides' edits spread over both
        sides' sample cases once they are paired)."""
        return self.per_kind


@dataclass
class RunResult:
    name: str
    changes: int
    wall_s: float
    intempus_requests: int
    local_requests: int
    idle_intempus_requests: int
    idle_local_requests: int
    passes: int | None
    idle_cases_read: int | None
    edits_kept: dict[str, list[int]]
    """Per side of the workload's edits, [kept, made]: the edited fields have the edit's value
    on both sides after the drain."""
    verified: bool
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    routes: dict[str, int] = field(default_factory=dict)
    """The drain's requests by side, method, route and status (JSON only: where they went)."""

    @property
    def cases_per_s(self) -> float:
        return self.changes / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def requests_per_change(self) -> float:
        return (self.intempus_requests + self.local_requests) / self.changes

    @property
    def idle_requests(self) -> int:
        return self.idle_intempus_requests + self.idle_local_requests


def send(method: str, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


class Stage:
    """Fresh stand-ins for one integration run, and the user's writes to them."""

    def __init__(self, name: str, directory: Path, workload: Workload) -> None:
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.workload = workload
        self.edits: list[tuple[str, int, dict[str, Any]]] = []
        """The workload's edits: side, the local id of the case, the fields set."""
        self.intempus = StandIn(
            "intempus",
            "intempus",
            [
                "--db", str(self.directory / "intempus.db"),
                "--seed", str(workload.seed),
                "--cases", str(workload.sample_per_side),
                "--rate-per-minute", "off",
                "--rate-per-day", "off",
            ],
            self.directory,
        )  # fmt: skip
        try:
            self.local = StandIn(
                "case-store",
                "case_store",
                ["--db", str(self.directory / "case_store.db")],
                self.directory,
            )
        except Exception:
            self.intempus.stop()
            raise

    def stop(self) -> None:
        self.intempus.stop()
        self.local.stop()

    def seed_local(self) -> None:
        rng = random.Random(self.workload.seed)
        for n in range(self.workload.sample_per_side):
            send("POST", f"{self.local.url}/cases/", case_fields(rng, f"L{n + 1}"))

    def truths(self) -> tuple[Any, Any]:
        return get_json(f"{self.intempus.url}/_standin/truth"), get_json(
            f"{self.local.url}/_standin/truth"
        )

    def apply_workload(self) -> None:
        """The N changes, as users make them: Intempus's through its UI routes, the case store's
        through its API without ``X-Sync-Origin``. Edits go to the paired sample cases, each
        to a different one, half from each side."""
        rng = random.Random(self.workload.seed + 1)
        intempus, local = self.truths()
        pairs = _pairs(intempus, local)
        rng.shuffle(pairs)
        k = self.workload.per_kind
        if len(pairs) < 2 * k:
            raise RuntimeError(f"only {len(pairs)} paired case(s) to edit, {2 * k} needed")
        for n in range(k):
            send(
                "POST",
                f"{self.intempus.url}/_standin/cases",
                for_intempus(case_fields(rng, f"I-new-{n}")),
            )
            send("POST", f"{self.local.url}/cases/", case_fields(rng, f"L-new-{n}"))
        for iid, lid in pairs[:k]:
            edit = edit_fields(rng)
            send("POST", f"{self.intempus.url}/_standin/cases/{iid}/touch", for_intempus(edit))
            self.edits.append(("intempus", lid, edit))
        for _, lid in pairs[k : 2 * k]:
            edit = edit_fields(rng)
            send("PATCH", f"{self.local.url}/cases/{lid}", edit)
            self.edits.append(("local", lid, edit))

    def edits_kept(self) -> dict[str, list[int]]:
        """How many of each side's edits have their values in place now (the sides agree, so
        the local row says it for both)."""
        _, local = self.truths()
        rows = {int(r["id"]): r for r in local["cases"] if not r["deleted"]}
        kept: dict[str, list[int]] = {"intempus": [0, 0], "local": [0, 0]}
        for side, lid, edit in self.edits:
            kept[side][1] += 1
            row = rows.get(lid)
            if row is not None and all(from_local(row)[k] == v for k, v in edit.items()):
                kept[side][0] += 1
        return kept

    def reset_stats_after(self, work: Callable[[], object]) -> None:
        """``work``, then the counts zeroed: requests it made are not measured."""
        work()
        self.reset_stats()

    def reset_stats(self) -> None:
        for standin in (self.intempus, self.local):
            post(f"{standin.url}/_standin/stats/reset")

    def requests(self) -> tuple[int, int]:
        return int(self.intempus.stats()["total"]), int(self.local.stats()["total"])

    def routes(self) -> dict[str, int]:
        return {
            f"{side} {r['method']} {r['route']} {r['status']}": int(r["count"])
            for side, standin in (("intempus", self.intempus), ("case-store", self.local))
            for r in standin.stats()["requests"]
        }

    def problems(self) -> list[str]:
        return disagreements(*self.truths())


def _pairs(intempus: Any, local: Any) -> list[tuple[int, int]]:
    """(Intempus id, local id) of the live cases paired by the local row's ``intempus_id``, or
    by Intempus's ``creation_id`` naming the local row; sorted, so the draw is repeatable."""
    live = {int(r["id"]) for r in local["cases"] if not r["deleted"]}
    by_link = {int(r["intempus_id"]): int(r["id"]) for r in local["cases"] if r["intempus_id"]}
    pairs = []
    for irow in intempus["cases"]:
        iid = int(irow["id"])
        lid = by_link.get(iid)
        creation = irow.get("creation_id") or ""
        if lid is None and ":" in creation and creation.split(":", 1)[1].isdigit():
            lid = int(creation.split(":", 1)[1])
        if lid is not None and lid in live:
            pairs.append((iid, lid))
    return sorted(pairs)


class Integration:
    """How to run one of the two: ``drain`` until both sides agree, ``idle`` one more pass."""

    name = ""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.runs = 0

    def _child(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.runs += 1
        child = Child(
            f"{self.name}-{self.runs}",
            argv,
            log_path=self.stage.directory / f"{self.name}-{self.runs}.log",
            env=env,
            cwd=REPO,
        )
        usage = child.wait(RUN_TIMEOUT)
        if usage is None:
            child.stop(5.0)
            raise RuntimeError(f"{child.name} did not finish in {RUN_TIMEOUT:g} s")
        if usage.exit_code != 0:
            raise RuntimeError(f"{child.name} exited {usage.exit_code}:\n{child.tail()}")

    def drain(self) -> int | None:
        """Bring both sides into agreement; the passes it took, where it counts them."""
        raise NotImplementedError

    def idle(self) -> int | None:
        """One pass over unchanged data; the cases it read (None: not known)."""
        raise NotImplementedError


POLL_LINE = re.compile(r"poll .*: \d+ page\(s\), (\d+) new, (\d+) (?:duplicate|already in)")
"""The engine's line after each poll: entries new to the inbox, entries it had already."""


class SyncRun(Integration):
    name = "sync"

    def _env(self, log_level: str = "WARNING") -> dict[str, str]:
        return {
            **os.environ,
            "INTEMPUS_STATE_DB": str(self.stage.directory / "state.db"),
            "INTEMPUS_URL": self.stage.intempus.url,
            "INTEMPUS_USER": DEFAULT_USER,
            "INTEMPUS_API_KEY": DEFAULT_API_KEY,
            "CASE_STORE_URL": self.stage.local.url,
            # Intempus's limit is off for the measurement; so is the sync's own budget (it
            # would otherwise pace the sync to 400 requests a minute).
            "INTEMPUS_MAX_PER_MINUTE": "10000000",
            "INTEMPUS_MAX_PER_DAY": "10000000",
            "LOG_LEVEL": log_level,
        }

    def drain(self) -> int | None:
        self._child(["run.py", "intempus", "--once"], self._env())
        return None

    def idle(self) -> int | None:
        """Its poll lines (DEBUG when a poll finds nothing new) say how many entries each feed
        served: the cases it read.
        Measured on the second pass after the drain: the first reads the echoes of the
        drain's own writes in the case store's feed (and writes nothing for them)."""
        self.stage.reset_stats_after(self.drain)
        self._child(["run.py", "intempus", "--once"], self._env("DEBUG"))
        log = (self.stage.directory / f"{self.name}-{self.runs}.log").read_text()
        served = POLL_LINE.findall(log)
        return sum(int(new) + int(seen) for new, seen in served) if served else None


class NaiveRun(Integration):
    name = "naive"

    def _naive(self, passes: int) -> list[dict[str, int]]:
        out = self.stage.directory / f"naive-{self.runs + 1}.json"
        self._child(
            [
                "-m", "devtools.intempus.naive",
                "--intempus-url", self.stage.intempus.url,
                "--case-store-url", self.stage.local.url,
                "--out", str(out),
                "--passes", str(passes),
            ]
        )  # fmt: skip
        result: list[dict[str, int]] = json.loads(out.read_text())["passes"]
        return result

    def drain(self) -> int | None:
        return len(self._naive(passes=20))

    def idle(self) -> int | None:
        return self._naive(passes=1)[0]["rows"]


def measure(cls: type[Integration], directory: Path, workload: Workload) -> RunResult:
    try:
        stage = Stage(cls.name, directory, workload)
    except RuntimeError as exc:
        return _failed(cls.name, workload, str(exc), [])
    try:
        integration = cls(stage)
        stage.seed_local()
        integration.drain()  # the sample cases, paired by the integration itself
        problems = stage.problems()
        if problems:
            return _failed(cls.name, workload, "the sample cases did not agree", problems)
        stage.apply_workload()
        stage.reset_stats()
        started = time.monotonic()
        passes = integration.drain()
        wall = time.monotonic() - started
        intempus_requests, local_requests = stage.requests()
        routes = stage.routes()
        problems = stage.problems()
        kept = stage.edits_kept()
        stage.reset_stats()
        idle_read = integration.idle()
        idle_intempus, idle_local = stage.requests()
        return RunResult(
            name=cls.name,
            changes=workload.total,
            wall_s=wall,
            intempus_requests=intempus_requests,
            local_requests=local_requests,
            idle_intempus_requests=idle_intempus,
            idle_local_requests=idle_local,
            passes=passes,
            idle_cases_read=idle_read,
            edits_kept=kept,
            verified=not problems,
            detail=f"{len(problems)} disagreement(s)" if problems else "",
            problems=problems[:20],
            routes=routes,
        )
    except (RuntimeError, OSError) as exc:  # a child failed, a stand-in refused or vanished
        return _failed(cls.name, workload, str(exc), [])
    finally:
        stage.stop()


def _failed(name: str, workload: Workload, detail: str, problems: list[str]) -> RunResult:
    return RunResult(
        name, workload.total, 0.0, 0, 0, 0, 0, None, None, {}, False, detail, problems[:20]
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _kept(run: RunResult, side: str) -> str:
    kept, made = run.edits_kept.get(side, [0, 0])
    return f"{kept}/{made}"


def table(sync: RunResult, naive: RunResult) -> str:
    rows = [
        ("", "sync", "naive", "sync / naive"),
        ("changes", f"{sync.changes}", f"{naive.changes}", ""),
        ("wall time to agree", f"{sync.wall_s:.2f} s", f"{naive.wall_s:.2f} s",
         _ratio(sync.wall_s, naive.wall_s)),
        ("cases propagated/s", f"{sync.cases_per_s:.0f}", f"{naive.cases_per_s:.0f}",
         _ratio(sync.cases_per_s, naive.cases_per_s)),
        ("Intempus requests/change", f"{sync.intempus_requests / sync.changes:.3f}",
         f"{naive.intempus_requests / naive.changes:.3f}",
         _ratio(sync.intempus_requests, naive.intempus_requests)),
        ("case store requests/change", f"{sync.local_requests / sync.changes:.3f}",
         f"{naive.local_requests / naive.changes:.3f}",
         _ratio(sync.local_requests, naive.local_requests)),
        ("all requests/change", f"{sync.requests_per_change:.3f}",
         f"{naive.requests_per_change:.3f}",
         _ratio(sync.requests_per_change, naive.requests_per_change)),
        ("idle pass: requests (Intempus+local)",
         f"{sync.idle_requests} ({sync.idle_intempus_requests}+{sync.idle_local_requests})",
         f"{naive.idle_requests} ({naive.idle_intempus_requests}+{naive.idle_local_requests})",
         _ratio(sync.idle_requests, naive.idle_requests)),
        ("idle pass: cases read", _count(sync.idle_cases_read), _count(naive.idle_cases_read),
         ""),
        ("edits kept: Intempus's", _kept(sync, "intempus"), _kept(naive, "intempus"), ""),
        ("edits kept: local", _kept(sync, "local"), _kept(naive, "local"), ""),
        ("both sides agree", "yes" if sync.verified else f"NO: {sync.detail}",
         "yes" if naive.verified else f"NO: {naive.detail}", ""),
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


NOTES = (
    "Requests are counted by the stand-ins (/_standin/stats), every one the integration made "
    "while bringing the sides into agreement, reads and writes; the workload's own writes are "
    "not counted. The naive loop keeps no state, so it cannot tell which side changed a linked "
    "case: Intempus wins the whole case, and the local edits are overwritten (its sides agree; "
    "its local users lose their edits). An idle pass: the sync polls both change feeds; the "
    "naive loop lists every case on both sides. Ratios, not absolute timings, carry over to "
    "other machines; wall times include starting the integration's process (about a second)."
)


@click.command(
    "bench",
    help=DESCRIPTION,
    short_help="benchmark the sync against a naive full-scan-every-pass integration",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"a small workload ({QUICK_CHANGES} changes), under a minute (default: off, "
    f"{DEFAULT_CHANGES:,} changes)",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="write both runs' figures as JSON (default: not written)",
)
@click.option(
    "--dir",
    type=click.Path(path_type=Path),
    default=None,
    help="keep the runs' files (stand-in databases, logs, the sync's state) here (default: a "
    "temporary directory, removed at the end)",
)
# For tests: a workload of this many changes, whatever --quick says.
@click.option("--changes", type=click.IntRange(min=4), default=None, hidden=True)
def command(**options: Any) -> None:
    sys.exit(main(argparse.Namespace(**options)))


def main(args: argparse.Namespace) -> int:
    changes = args.changes or (QUICK_CHANGES if args.quick else DEFAULT_CHANGES)
    workload = Workload(changes)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return _bench(args, workload, args.dir)
    with tempfile.TemporaryDirectory(prefix="intempus-bench-") as tmp:
        return _bench(args, workload, Path(tmp))


def _bench(args: argparse.Namespace, workload: Workload, directory: Path) -> int:
    print(
        f"workload: {workload.total} changes over both sides ({workload.per_kind} each: creates "
        f"in Intempus, creates locally, edits in Intempus, edits locally), on "
        f"{workload.sample_per_side} sample case(s) a side, seed {workload.seed}; fresh "
        f"stand-ins per run, Intempus's rate limit off (and the sync's budget raised to match)",
        flush=True,
    )
    results: list[RunResult] = []
    for cls in (SyncRun, NaiveRun):
        started = time.monotonic()
        print(f"  {cls.name}: running...", end="", flush=True)
        result = measure(cls, directory, workload)
        results.append(result)
        verdict = "both sides agree" if result.verified else f"FAILED: {result.detail}"
        print(f" {verdict} ({time.monotonic() - started:.1f} s)", flush=True)
        for problem in result.problems:
            print(f"    {problem}")
    sync, naive = results
    print()
    print(table(sync, naive))
    print()
    print(NOTES)
    if args.json_path is not None:
        args.json_path.write_text(
            json.dumps(
                {"workload": asdict(workload), "runs": [asdict(r) for r in results]}, indent=2
            )
        )
        print(f"wrote {args.json_path}")
    return 0 if all(r.verified for r in results) else 1
