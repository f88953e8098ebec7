"""The commands every sync has (``run [--once]``, ``status``, ``dead-letters``), its settings as
flags, and the settings-error explainer: one of each, for every sync.

Built on click: subcommand groups per sync, help generated from each flag's own text, testable
with ``CliRunner``. A sync's settings class is the single source of its flags: each field becomes
``--field-name``, its description the help, its default and environment variable shown."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import SecretStr, ValidationError

from .backends import require_asyncpg
from .clock import iso
from .http import mask_url
from .logs import setup_logging
from .shell import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, run_sync
from .state import SQLiteStore, StateError, StateStore, is_worker_state
from .sync import S, Sync, SyncSettings, explain, seconds_text, source_names

F = TypeVar("F", bound=Callable[..., Any])

SETTING = "setting_"
"""The prefix of a settings flag's parameter name, so a command's own flags never collide."""


def _shown(value: object) -> str:
    """A default as one would type it: ``10`` not ``10.0``, ``unset`` for None."""
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "hidden" if value.get_secret_value() else "unset"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).rstrip("/") if "://" in str(value) else str(value)


def settings_options(
    settings: type[SyncSettings],
    only: Sequence[str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """The settings ``only`` (all when None) as flags. A flag wins over the environment and
    ``.env``; unset, it changes nothing."""

    def decorate(command: F) -> F:
        names = list(only) if only is not None else list(settings.model_fields)
        for name in reversed(names):
            field = settings.model_fields[name]
            default = (defaults or {}).get(name, field.default)
            text = field.description or name.replace("_", " ")
            if name in settings.DURATIONS:
                text = f"{text}; a duration: 90, 90s, 10m, 1h30m, 2d"
                shown = seconds_text(float(default))
            else:
                shown = _shown(default)
            env = settings.env_name(name)
            command = click.option(
                f"--{name.replace('_', '-')}",
                f"{SETTING}{name}",
                metavar="DURATION" if name in settings.DURATIONS else env,
                default=None,
                help=f"{text} (default: {shown}; env {env})",
            )(command)
        return command

    return decorate


def load_settings(settings: type[S], params: dict[str, Any], **defaults: Any) -> S:
    """The settings from the environment, ``.env`` and the flags given (flags win). A bad value
    is one line naming the variable, and exit status 2."""
    overrides = {
        key.removeprefix(SETTING): value
        for key, value in params.items()
        if key.startswith(SETTING) and value is not None
    }
    try:
        return settings(**{**defaults, **overrides})
    except ValidationError as exc:
        click.echo(f"configuration error: {explain(exc, settings)}", err=True)
        sys.exit(EXIT_CONFIG)


def start_logging(settings: SyncSettings) -> None:
    setup_logging(settings.log_level, settings.log_format)


def run_async(work: Any) -> int:
    try:
        return int(asyncio.run(work))
    except KeyboardInterrupt:
        return EXIT_FAILURE


# -- the commands every sync has -----------------------------------------------------------

STATE_FLAGS = ("state_db", "state_url", "log_level", "log_format")
STATUS_FLAGS = (*STATE_FLAGS, "inbox_url", "inbox_name")
"""``status`` also shows, for several workers, each partition's lag in JetStream."""


def run_command(sync: Sync[Any]) -> click.Command:
    @click.command(
        "run",
        short_help="run the sync (the default command; --once drains and exits)",
        help=f"Run the {sync.name} sync until SIGINT or SIGTERM ({sync.summary}). Every "
        "setting is a flag, an environment variable or a line in .env (flags win). Exit "
        "status: 0 stopped cleanly (or, with --once, everything applied or set aside), 1 "
        "failed, 2 bad configuration.",
    )
    @click.option(
        "--once",
        is_flag=True,
        help="drain mode: read what the sources hold now, apply it all, then exit "
        "(default: run until stopped)",
    )
    @settings_options(sync.settings)
    def run(once: bool, **params: Any) -> None:
        settings = load_settings(sync.settings, params)
        start_logging(settings)
        sys.exit(run_async(run_sync(sync, settings, once=once)))

    return run


def status_command(sync: Sync[Any]) -> click.Command:
    @click.command(
        "status",
        short_help="cursor, backlog, dead letters, id maps",
        help=f"Show the {sync.name} sync's state: cursor, backlog, dead letters, id maps; "
        "with several workers, who polls and each partition's owner and lag.",
    )
    @settings_options(sync.settings, (*STATUS_FLAGS, *sync.settings.STATE_FIELDS))
    def status(**params: Any) -> None:
        settings = load_settings(sync.settings, params)
        sys.exit(run_async(show_status(sync, settings)))

    return status


def dead_letters_command(sync: Sync[Any]) -> click.Command:
    @click.command(
        "dead-letters",
        short_help="list dead letters, or put them back",
        help=f"List the {sync.name} sync's dead letters, or put them back for it to apply.",
    )
    @click.option(
        "--retry",
        "retry",
        metavar="ID|all",
        multiple=True,
        help="put back one (repeatable) or all (default: only list them)",
    )
    @settings_options(sync.settings, (*STATE_FLAGS, *sync.settings.STATE_FIELDS))
    def dead_letters(retry: tuple[str, ...], **params: Any) -> None:
        settings = load_settings(sync.settings, params)
        sys.exit(run_async(show_dead_letters(sync, settings, list(retry))))

    return dead_letters


def common_commands(sync: Sync[Any]) -> list[click.Command]:
    return [run_command(sync), status_command(sync), dead_letters_command(sync)]


# -- status and dead letters ---------------------------------------------------------------


async def open_state(settings: SyncSettings) -> StateStore | None:
    """The state the settings name (the file, or PostgreSQL's with ``state_url``), or None (said
    why) when there is none or it is not a worker's."""
    if settings.state_url is not None:
        return await _open_existing_postgres(settings.state_url)
    return await open_existing(settings.state_db)


async def open_existing(state_db: Path) -> SQLiteStore | None:
    """The state file, or None (said why) when there is none or it is not a worker's."""
    if not state_db.exists():  # noqa: ASYNC240 - one stat of a local file, at start-up
        print(f"no state at {state_db} (the worker has not run with this state file)")
        return None
    if not is_worker_state(state_db):
        # Opening it as a state would create the worker's tables in somebody else's database.
        print(
            f"{state_db} is not a worker's state file (no inbox in it); nothing changed",
            file=sys.stderr,
        )
        return None
    store = SQLiteStore(state_db)
    try:
        await store.open()
    except StateError as exc:
        print(f"cannot read the state: {exc}", file=sys.stderr)
        return None
    return store


async def _open_existing_postgres(url: str) -> StateStore | None:
    try:
        require_asyncpg()
        from .state.postgres import PostgresStore, has_worker_state

        # Looked at first: opening would create the worker's schema where there is none.
        if not await has_worker_state(url):
            print(f"no state at {mask_url(url)} (the worker has not run with this STATE_URL)")
            return None
        store = PostgresStore(url)
        await store.open()
    except StateError as exc:
        print(f"cannot read the state: {exc}", file=sys.stderr)
        return None
    return store


def ago(ts: float, now: float | None = None) -> str:
    seconds = max(0, int((time.time() if now is None else now) - ts))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


async def show_status(sync: Sync[Any], settings: SyncSettings) -> int:
    store = await open_state(settings)
    if store is None:
        return EXIT_FAILURE
    distributed: list[str] = []
    try:
        statuses = {source: await store.status(source) for source in source_names(sync, settings)}
        running = await store.meta_get(f"running:{sync.name}")
        if settings.state_url is not None:
            from .distributed.status import partition_lines
            from .state.postgres import PostgresStore

            assert isinstance(store, PostgresStore)
            distributed = await partition_lines(
                store,
                sync.name,
                settings.inbox_url,
                settings.worker_ttl,
                inbox_name=settings.inbox_name,
            )
    finally:
        await store.close()
    print(f"state            {settings.state_location()}")
    print(f"worker           {'running, or stopped uncleanly' if running else 'stopped cleanly'}")
    maps: dict[str, int] = {}
    several = len(statuses) > 1
    for source, status in statuses.items():
        # One source's lines read as they always did; several get a heading each.
        indent = "  " if several else ""
        if several:
            print(source)
        cursor = status.cursors.get(source)
        if cursor is not None and source in sync.positions:
            print(f"{indent + 'position':<17}{cursor:.0f}")
        elif cursor is not None:
            print(f"{indent + 'cursor':<17}{iso(cursor)} ({ago(cursor)})")
        elif not several:
            print("cursor           not set yet")
        inbox = status.inbox
        print(
            f"{indent + 'inbox':<17}{inbox['pending']} pending, {inbox['done']} done, "
            f"{inbox['dead']} dead"
        )
        if status.oldest_pending_at is not None:
            print(f"{indent + 'oldest pending':<17}item of {iso(status.oldest_pending_at)}")
        print(
            f"{indent + 'dead letters':<17}{status.dead_letters} "
            f"({status.blocked_keys} {sync.key_noun}(s) waiting behind one)"
        )
        maps = status.maps
    shown = ", ".join(f"{name} {count}" for name, count in sorted(maps.items())) or "empty"
    print(f"id maps          {shown}")
    for line in distributed:
        print(line)
    return EXIT_OK


async def show_dead_letters(sync: Sync[Any], settings: SyncSettings, retry: list[str]) -> int:
    store = await open_state(settings)
    if store is None:
        return EXIT_FAILURE
    try:
        if retry:
            ids: list[int] | None = None
            if "all" not in retry:
                try:
                    ids = [int(value) for value in retry]
                except ValueError:
                    print("--retry takes a dead letter's id, or 'all'", file=sys.stderr)
                    return EXIT_CONFIG
            count = await store.retry_dead_letters(ids)
            print(f"put back {count} dead letter(s); the worker applies them on its next pass")
            return EXIT_OK
        letters = [
            d for source in source_names(sync, settings) for d in await store.dead_letters(source)
        ]
    finally:
        await store.close()
    if not letters:
        print("no dead letters")
        return EXIT_OK
    noun = sync.key_noun
    width = max(12, len(noun))
    print(f"{'id':>5}  {noun:>{width}}  {'kind':<9} {'when':<20} reason")
    for d in sorted(letters, key=lambda letter: letter.id):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.created_at))
        blocks = f" [blocks its {noun}]" if d.blocking else ""
        print(f"{d.id:>5}  {d.key:>{width}}  {d.kind:<9} {when:<20} {d.reason}{blocks}")
    print(f"{len(letters)} dead letter(s); put back with --retry ID or --retry all")
    return EXIT_OK
