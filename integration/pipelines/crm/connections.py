"""The connections file: which provider accounts the CRM sync keeps in step with our system, and
how (``docs/crm-sync.md``, *The connections file*).

TOML, read once at start and checked whole: a mistake (an unknown provider, a mapping naming a
canonical field that does not exist, a rule outside the rule language, a limit the connector does
not take) stops the start with one line naming it. Credentials are never in the file: a
connection names the environment variable that holds its token (``token_env``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .canonical import FIELDS, OBJECTS, ObjectName
from .mapping import DEFAULTS, ObjectMap, check_fields
from .rules import Rule, RuleError, Rules

Provider = Literal["hubspot", "salesforce", "pipedrive"]
Owner = Literal["provider", "internal"]


class Deletes(BaseModel):
    """What a delete on one side does on the other."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_provider: Literal["delete", "archive", "skip"] = Field(
        "archive",
        description="a record deleted at the provider: delete ours, archive it (flag it, keep "
        "it), or leave it",
    )
    from_internal: Literal["delete", "skip"] = Field(
        "delete", description="a record deleted in our system: delete it at the provider, or not"
    )


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    provider: Provider
    url: AnyHttpUrl
    token_env: str | None = Field(
        None, description="the environment variable holding the API token (sent as a bearer)"
    )
    objects: tuple[ObjectName, ...] = OBJECTS
    limits: dict[str, int | float | str] = Field(
        default_factory=dict,
        description="the account's limits, as the connector's options (hubspot: burst, "
        "burst_window, daily, search_per_second; salesforce: allocation, window, client_id; "
        "pipedrive: daily_tokens, burst, burst_window)",
    )
    reserve: float = Field(
        0.1, ge=0, lt=1, description="share of every limit left to the account's other users"
    )
    owners: dict[str, Owner] = Field(
        default_factory=dict, description="canonical field → the side that is its system of record"
    )
    rules: tuple[Rule, ...] = ()
    deletes: Deletes = Deletes()
    mapping: dict[ObjectName, ObjectMap] = Field(
        default_factory=dict, description="replaces the provider's default mapping of an object"
    )
    batch_writes: bool = Field(
        True, description="write several records per call where the provider answers per record"
    )

    def object_map(self, object: ObjectName) -> ObjectMap:
        return self.mapping.get(object) or DEFAULTS[self.provider][object]

    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None

    @model_validator(mode="after")
    def _consistent(self) -> Connection:
        for object in self.objects:
            check_fields(object, self.object_map(object))
        known = {name for object in self.objects for name in FIELDS[object]}
        for name in self.owners:
            if name not in known:
                raise ValueError(f"owners: {name!r} is not a canonical field")
        try:
            self.rule_book()
        except RuleError as exc:
            raise ValueError(str(exc)) from None
        return self

    def rule_book(self) -> Rules:
        return Rules(self.rules, {object: FIELDS[object] for object in self.objects})


class ConnectionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    internal_url: AnyHttpUrl = Field(description="our internal system's base URL")
    connections: tuple[Connection, ...]

    @model_validator(mode="after")
    def _unique(self) -> ConnectionsFile:
        if not self.connections:
            raise ValueError("no connections: add at least one [[connections]] table")
        names = [c.name for c in self.connections]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ValueError(f"connection names must be unique: {', '.join(doubles)}")
        return self


class ConnectionsError(ValueError):
    """The connections file cannot be used, as one line naming the file and the problem."""


def load(path: Path) -> ConnectionsFile:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConnectionsError(f"{path}: no such connections file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectionsError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConnectionsError(f"{path}: not valid TOML ({exc})") from None
    try:
        return ConnectionsFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConnectionsError(f"{path}: {problems}") from None
