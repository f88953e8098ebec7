"""What every CRM connector offers the CRM sync: one interface over providers whose object
models, paging, ids and limits differ (``docs/crm-sync.md``).

A connector speaks its provider's wire format and nothing else: it reads records as
``RemoteRecord`` (the provider's own field names, flattened to one level), writes ``Write``s and
answers one ``WriteResult`` per record, and spends its provider's budget through the ``Budget`` it
is given before every request. Mapping provider fields to our canonical records, rules and
conflicts are the pipeline's, not the connector's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ...core.errors import TransientError

ObjectName = Literal["contact", "company"]
"""Canonical object names; each connector maps them to its own (``contacts``/``Contact``/
``persons``)."""


@dataclass(frozen=True)
class RemoteRecord:
    """One provider record as read.

    ``fields`` holds the provider's writable fields by the provider's own names, flattened to one
    level where the provider nests them (Pipedrive's primary e-mail is ``email``; its custom
    fields are ``custom_fields.<key>``). Values are as the provider sends them (HubSpot's are all
    strings). ``our_id`` is our internal id as stored at the provider (HubSpot's ``our_id``
    property, Salesforce's ``Our_Id__c``, Pipedrive's custom field), or None.
    """

    object: ObjectName
    id: str
    fields: Mapping[str, Any]
    updated_at: float
    """The provider's last-modified time, epoch seconds (HubSpot ``updatedAt``, Salesforce
    ``SystemModstamp``, Pipedrive ``update_time``)."""
    deleted: bool = False
    our_id: str | None = None


@dataclass(frozen=True)
class Write:
    """One record to create or update at the provider. ``provider_id`` None: create, or update
    the record already holding ``our_id`` (an upsert: a write repeated after a lost answer must
    not create a second record). ``fields`` use the provider's flattened names, as read."""

    our_id: str
    fields: Mapping[str, Any]
    provider_id: str | None = None
    surely_new: bool = False
    """The caller knows no earlier attempt of this write can have created the record (its
    intent was recorded before the first try): a provider without a native upsert (Pipedrive)
    may then create without first searching for ``our_id``."""


@dataclass(frozen=True)
class WriteResult:
    """One record's outcome in a (possibly batched) call, in the order of the writes.

    ``ok`` False with ``transient`` False is the provider refusing this record (a bad e-mail, a
    duplicate external id): ``error`` says why in one line naming the field where the provider
    names it. ``transient`` True: worth retrying (the batch failed as a whole, a 5xx).
    """

    ok: bool
    provider_id: str | None = None
    created: bool = False
    updated_at: float | None = None
    error: str | None = None
    transient: bool = False


@dataclass(frozen=True)
class Dimension:
    """One of a provider's limits: ``limit`` units per ``window`` seconds, rolling (any window of
    that length) or fixed (reset at the window's boundary, e.g. midnight). ``costs`` gives the
    units each kind of call takes (a call kind not listed takes ``default_cost``)."""

    name: str
    limit: int
    window: float
    rolling: bool = True
    costs: Mapping[str, int] = field(default_factory=dict)
    default_cost: int = 1
    offset: float = 0.0
    """A fixed window's boundaries are at ``k * window - offset`` epoch seconds (HubSpot's daily
    limit resets at the account's midnight: ``offset`` is its UTC offset in seconds)."""

    def cost(self, call: str) -> int:
        return self.costs.get(call, self.default_cost)


class RateLimited(TransientError):
    """The provider refused a request for a limit (HubSpot/Pipedrive 429, Salesforce 403
    ``REQUEST_LIMIT_EXCEEDED``): its word wins over our own count. ``wait`` is how long to send
    nothing on that dimension (the provider's ``Retry-After``, or the window's reset)."""

    def __init__(self, message: str, *, dimension: str, wait: float) -> None:
        super().__init__(message, retry_after=wait, maybe_applied=False, status=429)
        self.dimension = dimension
        self.wait = wait


class Budget(Protocol):
    """A connection's share of its provider's limits, shared by every worker of the connection.

    ``take(call)`` waits until one call of that kind fits every dimension, then counts it;
    ``refused(dimension, wait)`` is told what the provider said when it refused one anyway (its
    word wins: nothing is sent on that dimension for ``wait`` seconds)."""

    async def take(self, call: str) -> None: ...

    def refused(self, dimension: str, wait: float) -> None: ...


class Connector(Protocol):
    """One provider account, as the CRM sync uses it. Every method spends the budget before each
    request it sends and raises ``RateLimited`` (after telling the budget) when the provider
    refuses one for a limit; other failures are ``TransientError`` / ``PermanentError``."""

    kind: str
    """``hubspot``, ``salesforce`` or ``pipedrive``."""
    max_batch: int
    """The most records one write call takes (HubSpot 100, Salesforce 200, Pipedrive 1)."""

    def dimensions(self) -> Sequence[Dimension]:
        """The provider's limits, with the cost of each call kind this connector makes."""
        ...

    def changed_since(
        self, object: ObjectName, since: float | None
    ) -> AsyncIterator[list[RemoteRecord]]:
        """Records modified at or after ``since`` (None: every record), in pages, oldest first
        as far as the provider orders them. Deleted records are included where the provider can
        list them (``deleted=True``). Never misses a record under a drifting cursor: a page
        boundary is re-read from the last modified time seen, so a record may come twice."""
        ...

    async def get(self, object: ObjectName, ids: Sequence[str]) -> list[RemoteRecord | None]:
        """The records by provider id, in order; a deleted one with ``deleted=True`` where the
        provider still shows it, None where it does not know the id."""
        ...

    async def upsert(self, object: ObjectName, writes: Sequence[Write]) -> list[WriteResult]:
        """Create or update, one result per write in order, at most ``max_batch`` per call. A
        write with ``provider_id`` updates that record and leaves the id of ours it holds (or
        not) as it is: a record born at the provider never gets one, so its key never changes.
        Without ``provider_id``, the record holding ``our_id`` is updated if there is one, else
        created holding ``our_id`` (so repeating a write whose answer was lost never creates a
        second record)."""
        ...

    async def delete(self, object: ObjectName, ids: Sequence[str]) -> list[WriteResult]:
        """Delete (the provider's own delete: HubSpot archives, Salesforce's recycle bin,
        Pipedrive's soft delete). Deleting a record already gone is ``ok``."""
        ...

    def is_ours(self, record: RemoteRecord) -> bool | None:
        """Whether the record's last change was made by this sync, where the provider says so
        (a loop marker); None where it does not say."""
        ...


class UnlimitedBudget:
    """A budget that never waits (tests of a connector's wire format, null providers)."""

    def __init__(self) -> None:
        self.taken: dict[str, int] = {}
        self.refusals: list[tuple[str, float]] = []

    async def take(self, call: str) -> None:
        self.taken[call] = self.taken.get(call, 0) + 1

    def refused(self, dimension: str, wait: float) -> None:
        self.refusals.append((dimension, wait))


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists are kept as values)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            out.update(flatten(item, f"{name}."))
        else:
            out[name] = item
    return out
