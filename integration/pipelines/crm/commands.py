"""The CRM sync's own command: ``verify [--connection NAME] [--repair]``, our system and each
provider compared on the synced fields, record by record, through the links the sync keeps."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from ...connectors.crm.base import ObjectName, RemoteRecord
from ...connectors.crm.internal import InternalClient
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
from ...core.shell import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from ...core.state import StateStore
from ...core.sync import seconds_text
from .canonical import FIELDS, Canonical, validate
from .clients import Wired, connect
from .connections import ConnectionsError, ConnectionsFile, load
from .links import Link, link_key
from .mapping import to_canonical
from .rules import Direction, Facts, Rules
from .settings import CrmSettings
from .sink import CrmSink  # the sink's own merge and writes, exactly as the sync applies them
from .source import internal_key

FOR_VERIFY = (
    "state_db",
    "connections",
    "poll_interval",
    "http_timeout",
    "max_in_flight",
    "batch_linger",
    "breaker_hops",
    "breaker_window",
    "log_level",
    "log_format",
)

MISSING_THERE = "missing at the provider"
MISSING_HERE = "missing in ours"
DIFFERENT = "different"
DUPLICATE = "duplicate"
UNREADABLE = "unreadable"
PROBLEMS = (MISSING_THERE, MISSING_HERE, DIFFERENT, DUPLICATE, UNREADABLE)


@dataclass
class Difference:
    key: str
    problem: str
    detail: str

    @property
    def repairable(self) -> bool:
        """Whether the sink can converge the record (a duplicate needs a person's choice)."""
        return self.problem in (MISSING_THERE, MISSING_HERE, DIFFERENT)


@dataclass
class Report:
    connection: str
    linked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def count(self, problem: str) -> int:
        return sum(1 for d in self.differences if d.problem == problem)

    def summary(self) -> str:
        shown = [p for p in PROBLEMS if p != UNREADABLE or self.count(p)]  # only when it is so
        counts = ", ".join(f"{problem} {self.count(problem)}" for problem in shown)
        return f"{self.connection}: {self.linked} record(s) linked; {counts}"


def _wanted(
    rules: Rules, obj: ObjectName, record: Canonical, direction: Direction, archived: bool = False
) -> bool:
    """Whether the connection's rules would carry this record across, met for the first time."""
    facts = Facts(record, frozenset(record), archived=archived)
    return rules.decide(obj, direction, facts).action in ("upsert", "create_only")


def _ours_canonical(obj: ObjectName, row: dict[str, Any], synced: Sequence[str]) -> Canonical:
    picked = {name: row.get(name) for name in synced if name in FIELDS[obj]}
    return validate(obj, picked, where=f"our {obj} {row.get('id')}")


async def _links(store: StateStore, connection: str) -> list[Link]:
    return [
        Link.model_validate_json(value)
        async for _, value in store.map_iter(f"crm.{connection}.link")
    ]


async def compare_connection(
    wired: Wired, internal: InternalClient, store: StateStore, ours: dict[str, dict[int, Any]]
) -> Report:
    """One connection: the provider's live records (a full listing per object, which spends the
    connection's budget like a full scan) against ``ours`` (our live records by object and id),
    through the links in the state."""
    connection = wired.connection
    report = Report(connection.name)
    rules = connection.rule_book()
    links = await _links(store, connection.name)
    for obj in connection.objects:
        mapping = connection.object_map(obj)
        synced = list(mapping.synced())
        theirs: dict[str, RemoteRecord] = {}
        try:
            async for page in wired.connector.changed_since(obj, None):
                theirs.update({r.id: r for r in page if not r.deleted})
        except IntegrationError as exc:
            report.differences.append(Difference(f"{obj}:*", UNREADABLE, str(exc)))
            continue
        mine = ours[obj]
        of_obj = [link for link in links if link.object == obj]
        by_key = {link.key: link for link in of_obj}
        by_provider = {
            link.provider_id: link
            for link in of_obj
            if link.provider_id is not None and link.state == "live"
        }

        # Duplicates: one of our records held by two provider records, one provider record
        # linked twice.
        holders: dict[str, list[str]] = defaultdict(list)
        for record in theirs.values():
            if record.our_id:
                holders[record.our_id].append(record.id)
        for held, ids in sorted(holders.items()):
            if len(ids) > 1:
                report.differences.append(
                    Difference(
                        link_key(obj, int(held) if held.isdigit() else None, ids[0]),
                        DUPLICATE,
                        f"our id {held} held by {connection.provider} records {', '.join(ids)}",
                    )
                )
        targets: dict[str, list[str]] = defaultdict(list)
        for link in of_obj:
            if link.provider_id is not None and link.state == "live":
                targets[link.provider_id].append(link.key)
        for provider_id, keys in sorted(targets.items()):
            if len(keys) > 1:
                report.differences.append(
                    Difference(
                        keys[0], DUPLICATE, f"provider id {provider_id} linked by {', '.join(keys)}"
                    )
                )

        # Our live records: each one synced here is at the provider, with the same fields.
        for our_id, row in sorted(mine.items()):
            key = internal_key(connection.name, row)
            ours_link = by_key.get(key)
            if ours_link is not None and ours_link.state != "live":
                continue  # deleted or archived here by a delete or a rule: not expected there
            try:
                canonical = _ours_canonical(obj, row, synced)
            except IntegrationError as exc:
                report.differences.append(Difference(key, UNREADABLE, str(exc)))
                continue
            there = ours_link.provider_id if ours_link is not None else None
            found = theirs.get(there) if there is not None else None
            if found is None:
                # Missing unless the rules keep it from this provider. A record whose write was
                # refused (a dead letter) is missing too: the sides do not agree on it.
                if _wanted(rules, obj, canonical, "out", bool(row.get("archived"))):
                    gone = "never written" if ours_link is None else f"id {ours_link.provider_id}"
                    report.differences.append(
                        Difference(key, MISSING_THERE, f"our {obj} {our_id} ({gone})")
                    )
                continue
            report.linked += 1
            try:
                provider = to_canonical(obj, mapping, found.fields, where=key)
            except IntegrationError as exc:
                report.differences.append(Difference(key, UNREADABLE, str(exc)))
                continue
            fields = [name for name in synced if provider.get(name) != canonical.get(name)]
            if fields:
                report.differences.append(Difference(key, DIFFERENT, ", ".join(fields)))

        # The provider's live records: each one is linked to a live record of ours.
        for provider_id, remote in sorted(theirs.items()):
            theirs_link = by_provider.get(provider_id)
            if theirs_link is not None and theirs_link.our_id in mine:
                continue  # compared above
            key = theirs_link.key if theirs_link is not None else link_key(obj, None, provider_id)
            if theirs_link is not None and theirs_link.our_id is None and theirs_link.base is None:
                continue  # held back by a rule when it came in
            if theirs_link is None:
                try:
                    canonical = to_canonical(obj, mapping, remote.fields, where=key)
                except IntegrationError as exc:
                    report.differences.append(Difference(key, UNREADABLE, str(exc)))
                    continue
                if not _wanted(rules, obj, canonical, "in"):
                    continue
            report.differences.append(
                Difference(key, MISSING_HERE, f"{connection.provider} {obj} {provider_id}")
            )
    return report


async def our_records(internal: InternalClient, objects: set[ObjectName]) -> dict[str, Any]:
    """Our live records, by object and id."""
    ours: dict[str, dict[int, Any]] = {}
    for obj in sorted(objects):
        ours[obj] = {int(r["id"]): r async for page in internal.list_all(obj) for r in page}
    return ours


async def compare(
    settings: CrmSettings, config: ConnectionsFile, store: StateStore, names: Sequence[str]
) -> list[Report]:
    """A report per connection named (all when none are)."""
    reports: list[Report] = []
    async with connect(settings, config) as (internal, wired):
        chosen = [w for w in wired if not names or w.connection.name in names]
        objects = {obj for w in chosen for obj in w.connection.objects}
        try:
            ours = await our_records(internal, objects)
        except IntegrationError as exc:
            return [
                Report(w.connection.name, 0, [Difference("*", UNREADABLE, f"ours: {exc}")])
                for w in chosen
            ]
        for each in chosen:
            reports.append(await compare_connection(each, internal, store, ours))
    return reports


async def repair(
    settings: CrmSettings, config: ConnectionsFile, store: StateStore, reports: list[Report]
) -> None:
    """Each repairable difference converged by the connection's sink from both sides' current
    states (``CrmSink.reconcile``); what cannot be is said, one line each."""
    async with connect(settings, config) as (internal, wired):
        for each in wired:
            report = next((r for r in reports if r.connection == each.connection.name), None)
            if report is None or report.ok:
                continue
            sink = CrmSink(
                each.connection,
                each.connector,
                internal,
                store,
                SystemClock(),
                writer=each.writer,
                breaker_hops=settings.breaker_hops,
                breaker_window=settings.breaker_window,
            )
            for d in report.differences:
                if not d.repairable:
                    print(f"{report.connection} {d.key}: {d.problem} needs a person: {d.detail}")
                    continue
                try:
                    await sink.reconcile(d.key)
                    print(f"{report.connection} {d.key}: repaired")
                except IntegrationError as exc:
                    print(f"{report.connection} {d.key}: cannot repair: {exc}")


def print_reports(reports: list[Report]) -> None:
    for report in reports:
        print(report.summary())
        for d in report.differences:
            print(f"  {d.key:<16} {d.problem:<24} {d.detail}")


async def run_verify(
    settings: CrmSettings, names: Sequence[str] = (), *, repair_them: bool = False
) -> int:
    """``verify``: the reports printed, and the exit status (0: no difference anywhere)."""
    try:
        config = load(settings.connections)
    except ConnectionsError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    unknown = sorted(set(names) - {c.name for c in config.connections})
    if unknown:
        known = ", ".join(c.name for c in config.connections)
        print(f"verify: no connection {', '.join(unknown)} in {settings.connections} ({known})")
        return EXIT_CONFIG
    lock = StateLock(settings.state_db)
    if repair_them:
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
            reports = await compare(settings, config, store, names)
            if repair_them and not all(r.ok for r in reports):
                await repair(settings, config, store, reports)
                reports = await compare(settings, config, store, names)
        finally:
            await store.close()
    finally:
        lock.release()
    print_reports(reports)
    differences = sum(len(r.differences) for r in reports)
    linked = sum(r.linked for r in reports)
    print(
        f"verify: {len(reports)} connection(s), {linked} linked record(s): "
        f"{'OK' if not differences else f'{differences} difference(s)'}"
        f" (a change of the last {seconds_text(settings.poll_interval)} may still be on its way)"
    )
    return EXIT_OK if not differences else EXIT_FAILURE


@click.command(
    "verify",
    short_help="compare our system and each provider on the synced fields",
    help="Read every record of our system and of each provider now, and compare them through "
    "the sync's links on the synced fields: records linked, missing at the provider, missing "
    "in ours, different (the fields named), duplicates. Exit status 1 on any difference. "
    "Reading a provider whole spends its budget like a full scan.",
)
@click.option(
    "--connection",
    "names",
    multiple=True,
    metavar="NAME",
    help="only this connection (repeatable; default: every one in the connections file)",
)
@click.option(
    "--repair",
    is_flag=True,
    help="converge each missing or different record again from both sides' current states, "
    "as the sync would (default: only report); refused while the sync runs on the same state",
)
@settings_options(CrmSettings, FOR_VERIFY)
def verify_command(names: tuple[str, ...], repair: bool, **params: Any) -> None:
    settings = load_settings(CrmSettings, params)
    start_logging(settings)
    sys.exit(run_async(run_verify(settings, names, repair_them=repair)))


COMMANDS: list[click.Command] = [verify_command]
