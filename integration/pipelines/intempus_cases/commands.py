"""The Intempus sync's own commands: ``conflicts`` (every same-field clash, and who won) and
``verify [--repair]`` (both sides compared on the synced fields, case by case)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from ...core.clock import SystemClock
from ...core.commands import (
    load_settings,
    open_existing,
    run_async,
    settings_options,
    start_logging,
)
from ...core.errors import IntegrationError
from ...core.lock import AlreadyRunning, StateLock
from ...core.shell import EXIT_FAILURE, EXIT_OK
from ...core.state import StateStore
from ...core.sync import seconds_text
from .clients import connect
from .links import CONFLICTS, LINKS, Link
from .mapping import differs, from_intempus, from_local
from .settings import IntempusSettings
from .sink import CaseSink  # the sink's merge, exactly as the sync applies it

STATE_ONLY = ("state_db", "log_level", "log_format")
FOR_VERIFY = (
    "intempus_url",
    "intempus_user",
    "intempus_api_key",
    "case_store_url",
    "state_db",
    "http_timeout",
    "max_in_flight",
    "max_per_minute",
    "max_per_day",
    "conflict_policy",
    "delete_fallback",
    "log_level",
    "log_format",
)


@click.command(
    "conflicts",
    short_help="list the fields both sides changed, and who won",
    help="List every clash the sync resolved: a field changed on both sides since they last "
    "agreed (or a delete against an update), both values, and the side that won "
    "(INTEMPUS_CONFLICT_POLICY).",
)
@click.option("--last", type=int, default=50, help="how many, newest last (default: 50)")
@settings_options(IntempusSettings, STATE_ONLY)
def conflicts_command(last: int, **params: Any) -> None:
    settings = load_settings(IntempusSettings, params)
    sys.exit(run_async(show_conflicts(settings, last)))


async def show_conflicts(settings: IntempusSettings, last: int) -> int:
    store = await open_existing(settings.state_db)
    if store is None:
        return EXIT_FAILURE
    try:
        records = [json.loads(value) async for _, value in store.map_iter(CONFLICTS)]
    finally:
        await store.close()
    if not records:
        print("no conflicts")
        return EXIT_OK
    shown = records[-last:] if last > 0 else records
    print(f"{'when':<26} {'case':<10} {'field':<24} {'winner':<9} intempus / local")
    for r in shown:
        values = f"{r['intempus']!r} / {r['local']!r}"
        note = f"  ({r['note']})" if r.get("note") else ""
        print(f"{r['at']:<26} {r['case']:<10} {r['field']:<24} {r['winner']:<9} {values}{note}")
    more = f"; the last {len(shown)} shown" if len(shown) < len(records) else ""
    print(f"{len(records)} conflict(s){more}")
    return EXIT_OK


@dataclass
class Difference:
    case: str
    problem: str
    detail: str


@dataclass
class Report:
    cases: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


async def compare(settings: IntempusSettings, store: StateStore) -> Report:
    """Every linked case, as both sides list it now, compared on the synced fields. Both sides
    are read as full listings (a request per 1,000 Intempus cases, not one per case: a check of
    thousands of cases stays well inside Intempus's rate limit)."""
    report = Report()
    async with connect(settings) as (intempus, local):
        try:
            remote = {
                int(row["id"]): row async for page in intempus.all_cases() for row in page.rows
            }
            mine = {int(row["id"]): row async for rows in local.all_cases() for row in rows}
        except IntegrationError as exc:
            report.differences.append(Difference("(all)", "unreadable", str(exc)))
            return report
        async for key, value in store.map_iter(LINKS):
            link = Link.model_validate_json(value)
            if link.deleted or link.intempus_id is None or link.local_id is None:
                continue
            report.cases += 1
            irow, lrow = remote.get(link.intempus_id), mine.get(link.local_id)
            if irow is None or lrow is None:
                gone = "Intempus" if irow is None else "the case store"
                report.differences.append(Difference(key, "missing", f"gone from {gone} only"))
                continue
            try:
                fields = differs(from_intempus(irow), from_local(lrow))
            except IntegrationError as exc:
                report.differences.append(Difference(key, "bad data", str(exc)))
                continue
            if fields:
                report.differences.append(Difference(key, "different", ", ".join(fields)))
    return report


@click.command(
    "verify",
    short_help="compare both sides on the synced fields",
    help="Read every linked case on both sides now and compare the synced fields. Exit status "
    "1 on any difference. A change made in the last poll interval may still be on its way.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="merge each differing case again from both sides' current states, as the sync would "
    "(default: only report); refused while the sync runs on the same state file",
)
@settings_options(IntempusSettings, FOR_VERIFY)
def verify_command(repair: bool, **params: Any) -> None:
    settings = load_settings(IntempusSettings, params)
    start_logging(settings)
    sys.exit(run_async(run_verify(settings, repair)))


async def run_verify(settings: IntempusSettings, repair: bool) -> int:
    lock = StateLock(settings.state_db)
    if repair:
        try:
            lock.acquire()
        except AlreadyRunning:
            print(f"verify --repair: the sync is running on {settings.state_db}; stop it first")
            return EXIT_FAILURE
    try:
        store = await open_existing(settings.state_db)
        if store is None:
            return EXIT_FAILURE
        try:
            report = await compare(settings, store)
            if repair and not report.ok:
                await _repair(settings, store, report)
                report = await compare(settings, store)
        finally:
            await store.close()
    finally:
        lock.release()
    for d in report.differences:
        print(f"{d.case:<12} {d.problem:<12} {d.detail}")
    print(
        f"verify: {report.cases} linked case(s): "
        f"{'OK' if report.ok else f'{len(report.differences)} different'}"
        f" (a change of the last {seconds_text(settings.poll_interval)} may still be on its way)"
    )
    return EXIT_OK if report.ok else EXIT_FAILURE


async def _repair(settings: IntempusSettings, store: StateStore, report: Report) -> None:
    async with connect(settings) as (intempus, local):
        sink = CaseSink(
            intempus,
            local,
            store,
            clock=SystemClock(),
            policy=settings.conflict_policy,
            delete_fallback=settings.delete_fallback,
        )
        for d in report.differences:
            try:
                await sink.reconcile(d.case)
                print(f"repaired: {d.case}")
            except IntegrationError as exc:
                print(f"cannot repair {d.case}: {exc}")


COMMANDS: list[click.Command] = [conflicts_command, verify_command]
