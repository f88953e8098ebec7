"""The BigChat → OurAPI sync's own commands (``verify``) and its start-up check of the services.

``verify`` checks OurAPI against both records of what happened (BigChat's history and the
worker's inbox); ``--repair`` restores what is due through the worker's own inbox and sink."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import click

from ...connectors.bigchat.client import BigChatClient
from ...connectors.ourapi.client import OurApiClient
from ...core.clock import SystemClock
from ...core.commands import load_settings, run_async, settings_options, start_logging
from ...core.errors import IntegrationError
from ...core.http import HttpService
from ...core.lock import AlreadyRunning, StateLock
from ...core.shell import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from ...core.state import SQLiteStore, StateError, is_worker_state
from .records import SOURCE, seen_conversations
from .repair import Repairs, repair
from .settings import BigChatOurApiSettings as Settings
from .verify import Report, verify

log = logging.getLogger("integration")

PROBE_TIMEOUT = 3.0
"""Seconds the start-up check waits for each service: long enough for a slow answer, short
enough that a service that is down does not hold up the start."""


async def announce_services(settings: Settings) -> None:
    """One line per service: does it answer? Reads that change nothing; a service that is down
    does not stop the start (the worker retries until it answers). It reports no problem to the
    shell: a drain against a BigChat that is down fails its poll and exits 1 by itself."""
    probes = (
        ("BigChat", settings.bigchat_url, "advisors/1", None),
        ("OurAPI", settings.ourapi_url, "agents", {"email": ""}),
    )
    timeout = min(PROBE_TIMEOUT, settings.http_timeout)
    async with aiohttp.ClientSession() as session:
        for label, url, path, params in probes:
            service = HttpService(label.lower(), str(url), session, timeout=timeout, label=label)
            started = time.monotonic()
            try:
                response = await service.request("GET", path, params=params)
            except IntegrationError as exc:
                log.warning(
                    "%s (%s) is not answering: %s; starting anyway, retrying until it does",
                    label,
                    service.display_url.rstrip("/"),
                    str(exc).split(": ", 1)[-1],
                )
                continue
            took = (time.monotonic() - started) * 1000
            if response.status in (401, 403):
                log.warning(
                    "%s (%s) answers GET /%s with %d: check the credentials in its URL",
                    label,
                    service.display_url.rstrip("/"),
                    path,
                    response.status,
                )
            else:
                log.info(
                    "%s (%s) answers (GET /%s: %d in %.0f ms)",
                    label,
                    service.display_url.rstrip("/"),
                    path,
                    response.status,
                    took,
                )


# -- verify --------------------------------------------------------------------------------


def _range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    first, last = int(low), int(high or low)
    if first < 1 or last < first:
        raise ValueError(text)
    return list(range(first, last + 1))


def _instant(text: str) -> float:
    """``--until``: ISO 8601, UTC when it carries no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-22T12:30:00)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def verify_services(
    settings: Settings,
    ids: list[int] | None,
    *,
    fix: bool = False,
    until: float | None = None,
) -> tuple[Report, Repairs | None]:
    """Verify ``ids`` (None: every conversation the worker has received) up to ``until``
    (None: the worker's cursor); with ``fix``, repair the due differences and verify again.
    With ``fix`` the caller holds the state lock."""
    store: SQLiteStore | None = None
    if settings.state_db.exists():
        if not is_worker_state(settings.state_db):
            raise StateError(f"{settings.state_db} is not a worker's state file (no inbox in it)")
        store = SQLiteStore(settings.state_db)
        await store.open()
    try:
        until_from = "--until"
        if until is None and store is not None:
            until = await store.get_cursor(SOURCE)
            until_from = "the worker's cursor"
        if ids is None:
            ids = await seen_conversations(settings.state_db) if store is not None else []
        async with aiohttp.ClientSession() as session:
            bigchat = BigChatClient(
                HttpService(
                    "bigchat",
                    str(settings.bigchat_url),
                    session,
                    max_in_flight=settings.bigchat_max_in_flight,
                    timeout=settings.http_timeout,
                )
            )
            ourapi = OurApiClient(
                HttpService(
                    "ourapi",
                    str(settings.ourapi_url),
                    session,
                    max_in_flight=settings.ourapi_max_in_flight,
                    timeout=settings.http_timeout,
                )
            )

            async def check() -> Report:
                report = await verify(bigchat, ourapi, ids, store=store, until=until)
                report.until_from = until_from if until is not None else ""
                return report

            report = await check()
            if not fix or report.ok or store is None:
                return report, None
            print_report(report)
            repairs = await repair(
                bigchat,
                ourapi,
                store,
                report,
                clock=SystemClock(),
                landing_horizon=settings.ourapi_write_horizon,
            )
            for line in repairs.done:
                print(f"repaired: {line}")
            for line in repairs.impossible:
                print(f"cannot repair: {line}")
            return await check(), repairs
    finally:
        if store is not None:
            await store.close()


def _utc_text(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def print_report(report: Report) -> None:
    if report.findings:
        print(f"{'conversation':>12}  {'problem':<22} {'record':<8} detail")
        for f in report.findings:
            print(f"{f.conversation_id:>12}  {f.problem:<22} {f.record:<8} {f.detail}")
    for email, count in sorted(report.duplicated_agents.items()):
        print(
            f"{'':>12}  {'duplicated agent':<22} {'ourapi':<8} {count} agents with e-mail {email}"
        )
    if report.until is not None:
        print(
            f"not yet due: {report.later_messages} message(s) in {report.later_conversations} "
            f"conversation(s) after {_utc_text(report.until)} ({report.until_from or 'until'})"
        )
    else:
        print("not yet due: nothing (no worker state: every event BigChat lists is due)")
    problems = {f.problem for f in report.findings}
    counts = ", ".join(f"{report.count(p)} {p}" for p in sorted(problems)) or "no differences"
    print(
        f"verify: {report.conversations} conversation(s), {report.chats} chat(s), "
        f"{report.messages_held}/{report.messages_expected} message(s): "
        f"{'OK' if report.ok else 'DIFFERENT'}, {counts}"
    )


async def run_verify(
    settings: Settings, conversations: str | None, until: float | None, fix: bool
) -> int:
    ids: list[int] | None = None
    if conversations:
        try:
            ids = _range(conversations)
        except ValueError:
            print("--conversations takes a range like 1-500", file=sys.stderr)
            return EXIT_CONFIG
    if not settings.state_db.exists() and (ids is None or fix):
        why = "repairs go through the worker's state" if fix else "nothing to verify"
        print(f"no state at {settings.state_db} ({why}; set STATE_DB to the worker's state)")
        return EXIT_FAILURE
    lock = StateLock(settings.state_db)
    if fix:
        try:
            lock.acquire()
        except AlreadyRunning:
            print(
                f"verify --repair: a worker is running on {settings.state_db}; stop it first "
                "(repairs go through its inbox)"
            )
            return EXIT_FAILURE
    try:
        report, _ = await verify_services(settings, ids, fix=fix, until=until)
    except StateError as exc:
        print(f"cannot read the state: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        lock.release()
    print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILURE


FOR_VERIFY = (
    "bigchat_url",
    "ourapi_url",
    "state_db",
    "http_timeout",
    "bigchat_max_in_flight",
    "ourapi_max_in_flight",
    "ourapi_write_horizon",
    "log_level",
    "log_format",
)


@click.command(
    "verify",
    short_help="check OurAPI against what the worker was due to have applied",
    help="Check OurAPI against both records of what happened: BigChat's history where BigChat "
    "still lists it, and the worker's inbox in STATE_DB. Only events dated before the worker's "
    "cursor are due; later ones are counted as not yet due. Exit status 1 on any due "
    "difference.",
)
@click.option(
    "--conversations",
    metavar="A-B",
    help="a range of conversation ids (default: every conversation the worker has received)",
)
@click.option(
    "--until",
    metavar="TIME",
    callback=lambda ctx, param, value: None if value is None else _instant(value),
    help="judge the events dated before this time (ISO 8601, UTC when no offset is given; "
    "default: the worker's cursor in STATE_DB, or now when there is no state)",
)
@click.option(
    "--repair",
    "fix",
    is_flag=True,
    help="repair the due differences through the worker's own inbox and ledger, so the "
    "worker never posts them a second time (default: only report); refused while a worker "
    "holds STATE_DB",
)
@settings_options(Settings, FOR_VERIFY)
def verify_command(
    conversations: str | None, until: float | None, fix: bool, **params: Any
) -> None:
    settings = load_settings(Settings, params)
    start_logging(settings)
    sys.exit(run_async(run_verify(settings, conversations, until, fix)))


COMMANDS: list[click.Command] = [verify_command]
