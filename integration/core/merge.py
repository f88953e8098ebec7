"""A three-way merge of one record's fields between a provider and our system (no I/O).

Each side's state is compared, field by field, with ``base``: the state both sides last agreed
on. A field only one side changed takes that side's value. A field both changed differently is a
clash: its owner wins if it has one, otherwise the later change (the sides' source timestamps),
our system on a tie. A field with an owner never takes the other side's change: the system of
record's value is written back over it.

The Intempus sync has its own merge (groups of fields merged as one, a side-wide policy); this one
is per field, with ownership and last-writer-wins, as the CRM sync needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["provider", "internal"]
_MISSING = object()


@dataclass(frozen=True)
class Clash:
    field: str
    provider: Any
    internal: Any
    base: Any
    winner: Side
    why: Literal["owner", "later", "tie"]


@dataclass(frozen=True)
class Merged:
    result: dict[str, Any]
    for_provider: dict[str, Any] = field(default_factory=dict)
    for_internal: dict[str, Any] = field(default_factory=dict)
    clashes: list[Clash] = field(default_factory=list)
    taken: dict[str, Side] = field(default_factory=dict)
    """Where each field's value came from, for the fields that changed."""


def merge(
    fields: Sequence[str],
    base: Mapping[str, Any] | None,
    provider: Mapping[str, Any],
    internal: Mapping[str, Any],
    *,
    provider_at: float,
    internal_at: float,
    owner: Callable[[str], Side | None] = lambda name: None,
) -> Merged:
    result: dict[str, Any] = {}
    clashes: list[Clash] = []
    taken: dict[str, Side] = {}
    for name in fields:
        p, i = provider.get(name), internal.get(name)
        b = _MISSING if base is None else base.get(name, _MISSING)
        rule = owner(name)
        if p == i:
            result[name] = p
            continue
        p_changed = b is _MISSING or p != b
        i_changed = b is _MISSING or i != b
        if rule is not None:
            winner: Side = rule
        elif p_changed and not i_changed:
            winner = "provider"
        elif i_changed and not p_changed:
            winner = "internal"
        else:
            winner = "provider" if provider_at > internal_at else "internal"
        if p_changed and i_changed:
            why: Literal["owner", "later", "tie"] = (
                "owner" if rule is not None else "tie" if provider_at == internal_at else "later"
            )
            clashes.append(Clash(name, p, i, None if b is _MISSING else b, winner, why))
        result[name] = p if winner == "provider" else i
        taken[name] = winner
    return Merged(
        result=result,
        for_provider={n: result[n] for n in fields if provider.get(n) != result[n]},
        for_internal={n: result[n] for n in fields if internal.get(n) != result[n]},
        clashes=clashes,
        taken=taken,
    )
