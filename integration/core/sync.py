"""The contract a sync fulfils to run in the process shell (``shell.py``) on the engine.

A sync is a ``Sync`` value exported by its package: a name (the command group, the running mark,
the default state file), a settings class (a ``SyncSettings``: it owns its environment names and
becomes the command's flags), an ``assemble`` step (its flows, built from its settings), and
optional extra commands. Nothing else in the project changes when one is added, except the list
of syncs the command line offers (``integration/syncs.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import click
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .clock import Clock, SystemClock
from .distributed.partitions import MAX_PARTITIONS
from .durations import parse_duration
from .engine import EngineSettings
from .flow import Flow
from .http import mask_url
from .retry import RetryPolicy
from .stats import Stats
from .store import StateStore

WEEK = 7 * 86400.0


def log_setting_case(value: object, info: ValidationInfo) -> object:
    """LOG_LEVEL and LOG_FORMAT in any case (``debug``, ``JSON``): levels upper-case, formats
    lower-case."""
    if isinstance(value, str):
        return value.upper() if info.field_name == "log_level" else value.lower()
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class SyncSettings(BaseSettings):
    """What every sync's settings have: where its state is, how often it polls, how many keys
    it applies at once, how it stops, how long it keeps what it applied, where it serves health
    and metrics, and how it logs.

    A sync's own names (``BIGCHAT_URL``, ``MONGO_URI``) are its fields; where two syncs would
    share a name with different meanings (``POLL_INTERVAL``), a sync sets ``env_prefix`` in its
    ``model_config`` (``TRACOS_POLL_INTERVAL``) and gives its contract's names a
    ``validation_alias`` equal to the field's name, which the prefix does not touch. ``LOG_LEVEL``
    and ``LOG_FORMAT`` are the same for every sync.
    """

    # An empty variable (METRICS_PORT=) means "not set", as operators write in env files.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    DURATIONS: ClassVar[frozenset[str]] = frozenset(
        {"poll_interval", "shutdown_grace", "retention", "worker_ttl"}
    )
    """Fields in seconds that also take a duration as people type one (90s, 10m, 7d). A sync
    adds its own: ``DURATIONS = SyncSettings.DURATIONS | {...}``."""

    STATE_FIELDS: ClassVar[tuple[str, ...]] = ()
    """A sync's own fields that the commands reading its state need too (the CRM sync's
    connections file names its sources); they become flags of ``status`` and ``dead-letters``."""

    state_db: Path = Field(
        Path("integration-state.db"),
        description="the sync's state: cursor, inbox, dead letters, id maps (SQLite)",
    )
    state_url: str | None = Field(
        None,
        description="PostgreSQL state (postgresql://...) instead of STATE_DB; needs the "
        "distributed extra",
    )
    inbox_url: str | None = Field(
        None,
        description="several workers: NATS JetStream (nats://...) carries the inbox's entries "
        "to the partitions' owners; needs STATE_URL and the distributed extra",
    )
    inbox_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="several workers: names the JetStream stream (IW_<NAME>) and its subjects "
        "(iw.<name>.p.<n>); default: the sync's name. Two deployments of one sync on one NATS "
        "server need different names",
    )
    partitions: int = Field(
        16,
        ge=1,
        le=MAX_PARTITIONS,
        description="several workers: how many partitions the keys are spread over (the same "
        "for every worker, for the life of the state)",
    )
    worker_ttl: float = Field(
        5.0,
        gt=0,
        description="several workers: seconds of silence after which a worker is taken for "
        "dead and its partitions (and the poller role) go to the others",
    )
    poll_interval: float = Field(10.0, gt=0, description="seconds between polls")
    concurrency: int = Field(16, ge=1, le=1024, description="keys applied in parallel")
    shutdown_grace: float = Field(
        10.0, ge=0, description="seconds a stop waits for the work in flight to finish"
    )
    retention: float = Field(
        WEEK,
        gt=0,
        description="seconds applied inbox entries are kept (and de-duplicate what a source "
        "serves again); then they are deleted",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="serve /healthz and /metrics on this port (off when unset)",
    )
    metrics_host: str = Field("127.0.0.1", description="address /healthz and /metrics listen on")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        validation_alias="log_level",
        description="DEBUG, INFO, WARNING or ERROR (DEBUG shows each retry)",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        validation_alias="log_format",
        description="text (one line per record) or json",
    )

    _log_case = field_validator("log_level", "log_format", mode="before")(log_setting_case)

    @field_validator("state_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("a PostgreSQL URL: postgresql://user[:password]@host[:port]/database")
        return value

    @field_validator("inbox_url")
    @classmethod
    def _nats_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if not value.startswith(("nats://", "tls://")):
            raise ValueError("a NATS URL: nats://host[:port] (JetStream enabled)")
        if info.data.get("state_url") is None:
            raise ValueError(
                "needs STATE_URL (postgresql://...) as well: several workers share their state "
                "in PostgreSQL"
            )
        return value

    def state_location(self) -> str:
        """Where the state is, as a log line or ``status`` shows it (a password masked)."""
        return mask_url(self.state_url) if self.state_url else str(self.state_db)

    @field_validator("*", mode="before")
    @classmethod
    def _duration(cls, value: object, info: ValidationInfo) -> object:
        """Seconds, or a duration (``90s``, ``10m``, ``7d``): the environment, ``.env`` and the
        command line accept the same forms."""
        if (
            info.field_name in cls.DURATIONS
            and isinstance(value, str)
            and value.strip()
            and not _is_number(value)
        ):
            return parse_duration(value)
        return value

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable that sets field ``name``."""
        alias = cls.model_fields[name].validation_alias
        if isinstance(alias, str):
            return alias.upper()
        return f"{cls.model_config.get('env_prefix', '')}{name}".upper()

    def engine_settings(self, retry: RetryPolicy | None = None) -> EngineSettings:
        """The engine's settings; a sync with more (a windowed source's lag) overrides this."""
        return EngineSettings(
            poll_interval=self.poll_interval,
            concurrency=self.concurrency,
            shutdown_grace=self.shutdown_grace,
            retention=self.retention,
            retry=retry or RetryPolicy(),
        )


def explain(exc: ValidationError, settings: type[SyncSettings] | None = None) -> str:
    """A settings error as one line naming the variable, e.g.
    ``POLL_INTERVAL: Input should be greater than 0 (got '-1')``. A password in a URL
    (``scheme://user:secret@host``) is hidden: the line goes to a terminal or a log."""
    parts = []
    for err in exc.errors():
        field_name = ".".join(str(p) for p in err["loc"])
        if settings is not None and field_name in settings.model_fields:
            name = settings.env_name(field_name)
        else:
            name = field_name.upper() or "SETTINGS"
        got = err.get("input")
        if isinstance(got, str):
            got = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", got)
        shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
        parts.append(f"{name}: {err['msg'].removeprefix('Value error, ')}{shown}")
    return "; ".join(parts)


@dataclass
class Runtime:
    """What the shell hands a sync's assembly besides its settings: the state store, and the
    clock, counters and retry policy (injected, so tests and the benchmark can set them)."""

    store: StateStore
    clock: Clock = field(default_factory=SystemClock)
    stats: Stats = field(default_factory=Stats)
    retry: RetryPolicy | None = None


S = TypeVar("S", bound=SyncSettings)

Assemble = Callable[[S, Runtime], AbstractAsyncContextManager[Sequence[Flow]]]
"""Build a sync's flows from its settings (connections, clients), and close them at the end."""


@dataclass(frozen=True)
class Sync(Generic[S]):
    name: str
    """The command group (``python run.py tracos``), the logger, the engine's running mark."""
    summary: str
    """One line: what it keeps in step with what."""
    settings: type[S]
    assemble: Assemble[S]
    sources: Sequence[str] | Callable[[S], Sequence[str]]
    """Its flows' source names, for the commands that read the state without connecting; a
    function of the settings where they depend on them (the CRM sync's, on its connections)."""
    positions: Sequence[str] = ()
    """The sources whose cursor is a position the source hands out (a version, a logical
    timestamp), not a time: ``status`` shows it as a number."""
    key_noun: str = "key"
    """What a key is to a person (``conversation``, ``work order``), in status and dead letters."""
    describe: Callable[[S], str] | None = None
    """The start-up line's details (services, with credentials masked)."""
    preflight: Callable[[S], Awaitable[str | None]] | None = None
    """At start-up: check the services; a line saying what does not answer, or None. Running,
    the sync starts anyway (a service may come back); draining (``--once``), it exits 1 with
    that line at once instead of waiting for it."""
    commands: Sequence[click.Command] = ()
    """Commands of its own, besides run, status and dead-letters (verify, sample)."""
    dev_commands: dict[str, str] = field(default_factory=dict)
    """Development tools of its own (a demo, a benchmark), by name: ``"module:attribute"`` of a
    click command, imported only when asked for (they start stand-ins the worker never loads)."""


def source_names(sync: Sync[Any], settings: Any) -> Sequence[str]:
    """A sync's source names under ``settings``."""
    return sync.sources(settings) if callable(sync.sources) else sync.sources


def seconds_text(seconds: float) -> str:
    """Seconds as the largest whole unit: ``10s``, ``5m``, ``7d``."""
    if math.isfinite(seconds):
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
