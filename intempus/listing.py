"""List answers: tastypie's filters, ordering, offset paging, and Intempus's cursor paging.

Checks run in tastypie's order (filters, then ordering, then limit, then offset), so a request
with several mistakes gets the same first complaint as the real service. ``meta.next`` is the
list path plus *all* the request's own query parameters, with the paging ones replaced, never an
absolute URL.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from multidict import MultiDict, MultiMapping

from intempus.case import CASE_KEYS, StoredCase
from intempus.errors import bad_request

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

QUERY_TERMS = frozenset(
    {
        "exact", "iexact", "contains", "icontains", "in", "gt", "gte", "lt", "lte",
        "startswith", "istartswith", "endswith", "iendswith", "range", "year", "month", "day",
        "week_day", "isnull", "search", "regex", "iregex",
    }
)  # fmt: skip
RELATED = frozenset(
    {"customer", "case_group", "case_group_full", "case_state", "department", "responsible",
     "co_responsible", "parent", "root_parent", "priority"}
)  # fmt: skip
_NUMERIC = frozenset({"exact", "gt", "gte", "lt", "lte", "in"})
FILTERING: dict[str, dict[str, frozenset[str]]] = {
    "full": {
        "id": _NUMERIC,
        "logical_timestamp": _NUMERIC,
        "active": frozenset({"exact"}),
        "number": frozenset({"exact", "in"}),
        "customer": frozenset({"exact", "in"}),
        "name": frozenset({"icontains"}),
    },
    "minimal": {"logical_timestamp": frozenset({"gt"}), "active": frozenset({"exact"})},
}
ORDERING = frozenset({"id", "logical_timestamp", "number", "name"})
MISMATCH = "Invalid resource lookup data provided (mismatched type)."

Predicate = Callable[[StoredCase], bool]


def _value(case: StoredCase, name: str) -> Any:
    if name == "id":
        return case.id
    if name == "logical_timestamp":
        return case.lt
    return case.fields[name]


def _int(text: str) -> int:
    # A URI is accepted where an id is expected (the last path segment), like tastypie's
    # related-field filters accept the pk.
    text = text.strip().rstrip("/").rsplit("/", 1)[-1]
    try:
        return int(text)
    except ValueError:
        raise bad_request(MISMATCH) from None


def _bool(text: str) -> bool:
    if text in ("true", "True", "1"):
        return True
    if text in ("false", "False", "0"):
        return False
    raise bad_request(MISMATCH)


def _predicate(name: str, term: str, values: list[str]) -> Predicate:
    convert: Callable[[str], Any] = (
        _bool if name == "active" else (str if name in ("number", "name") else _int)
    )
    if term == "in":
        wanted = {convert(part) for value in values for part in value.split(",")}
        return lambda case: _value(case, name) in wanted
    target = convert(values[-1])
    if term == "icontains":
        needle = str(target).casefold()
        return lambda case: needle in str(_value(case, name)).casefold()
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "exact": lambda a, b: bool(a == b),
        "gt": lambda a, b: bool(a > b),
        "gte": lambda a, b: bool(a >= b),
        "lt": lambda a, b: bool(a < b),
        "lte": lambda a, b: bool(a <= b),
    }
    check = compare[term]
    return lambda case: check(_value(case, name), target)


def build_filters(query: MultiMapping[str], mode: str) -> list[Predicate]:
    """The predicates of the query's filters; 400 with tastypie's text for a refused one.
    Parameters that are not case fields (``limit``, typos, ...) are ignored."""
    allowed = FILTERING[mode]
    predicates: list[Predicate] = []
    for expression in dict.fromkeys(query.keys()):
        bits = expression.split("__")
        name = bits.pop(0)
        if name not in CASE_KEYS:
            continue
        term = "exact"
        if bits and bits[-1] in QUERY_TERMS:
            term = bits.pop()
        if name not in allowed:
            raise bad_request(f"The '{name}' field does not allow filtering.")
        if term not in allowed[name]:
            raise bad_request(f"'{term}' is not an allowed filter on the '{name}' field.")
        if bits:
            if name not in RELATED:
                raise bad_request(f"The '{name}' field does not support relations.")
            raise bad_request(
                f"Lookups are not allowed more than one level deep on the '{name}' field."
            )
        predicates.append(_predicate(name, term, query.getall(expression)))
    return predicates


def build_ordering(query: MultiMapping[str]) -> list[tuple[str, bool]]:
    """``(field, descending)`` pairs of the ``order_by`` parameters."""
    ordering: list[tuple[str, bool]] = []
    for item in query.getall("order_by", []):
        name = item.split("__")[0]
        descending = name.startswith("-")
        name = name.lstrip("-")
        if name not in CASE_KEYS:
            raise bad_request(f"No matching '{name}' field for ordering on.")
        if name not in ORDERING:
            raise bad_request(f"The '{name}' field does not allow ordering.")
        ordering.append((name, descending))
    return ordering


def order(cases: Sequence[StoredCase], ordering: list[tuple[str, bool]]) -> list[StoredCase]:
    result = sorted(cases, key=lambda c: c.id)
    for name, descending in reversed(ordering):
        result.sort(key=lambda c: _value(c, name), reverse=descending)
    return result


def get_limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request(
            f"Invalid limit '{raw}' provided. Please provide a positive integer."
        ) from None
    if limit < 0:
        raise bad_request(
            f"Invalid limit '{raw}' provided. Please provide a positive integer >= 0."
        )
    return MAX_LIMIT if limit == 0 or limit > MAX_LIMIT else limit


def get_offset(query: Mapping[str, str]) -> int:
    raw = query.get("offset", "0")
    try:
        offset = int(raw)
    except ValueError:
        raise bad_request(
            f"Invalid offset '{raw}' provided. Please provide a positive integer."
        ) from None
    if offset < 0:
        raise bad_request(
            f"Invalid offset '{raw}' provided. Please provide a positive integer >= 0."
        )
    return offset


def encode_cursor(last_id: int) -> str:
    raw = json.dumps({"id": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["id"]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise bad_request("Invalid cursor provided.")


def page_uri(path: str, query: MultiMapping[str], **replace: str) -> str:
    """``path`` plus the request's parameters in their order, ``replace`` set (or appended)."""
    params: MultiDict[str] = MultiDict(query)
    for key, value in replace.items():
        if key in params:
            params[key] = value  # keeps the first one's position, drops repeats
        else:
            params.add(key, value)
    return f"{path}?{urlencode(list(params.items()))}"


@dataclass(frozen=True)
class Page:
    meta: dict[str, Any]
    cases: list[StoredCase]


class OffsetSnapshots:
    """Without ``offset_drift``, offset pages are served from the id list taken when page 0 of
    the same query was read, so deletes during a scan shift nothing (a deleted row's slot is
    just skipped). A small LRU: a query whose page 0 was never seen is read live."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._lists: OrderedDict[tuple[tuple[str, str], ...], list[int]] = OrderedDict()

    @staticmethod
    def key(query: MultiMapping[str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in query.items() if k not in ("limit", "offset")))

    def take(self, key: tuple[tuple[str, str], ...], ids: list[int]) -> None:
        self._lists[key] = ids
        self._lists.move_to_end(key)
        while len(self._lists) > self._size:
            self._lists.popitem(last=False)

    def get(self, key: tuple[tuple[str, str], ...]) -> list[int] | None:
        return self._lists.get(key)


def list_page(
    path: str,
    query: MultiMapping[str],
    cases: Sequence[StoredCase],
    *,
    filters: Literal["full", "minimal"] | None,
    drift: bool,
    snapshots: OffsetSnapshots,
    cursor_meta_full: bool,
    by_id: Mapping[int, StoredCase],
) -> Page:
    """One page of ``cases`` (sorted by id) for ``query``. ``filters`` None: the resource
    allows no filtering and ignores every other parameter (the read-only resources)."""
    predicates = [] if filters is None else build_filters(query, filters)
    ordering = [] if filters is None else build_ordering(query)
    limit = get_limit(query)
    selected = [c for c in cases if all(p(c) for p in predicates)]
    if query.get("pagination_type") == "cursor":
        after = query.get("after")
        start = decode_cursor(after) if after is not None else None
        remaining = [c for c in selected if start is None or c.id > start]
        rows = remaining[:limit]
        more = len(remaining) > limit
        meta: dict[str, Any] = {
            "limit": limit,
            "next": page_uri(path, query, limit=str(limit), after=encode_cursor(rows[-1].id))
            if more
            else None,
            "previous": None,
        }
        if cursor_meta_full:
            meta["offset"] = len(selected) - len(remaining)
            meta["total_count"] = len(selected)
        return Page(meta, rows)
    offset = get_offset(query)
    selected = order(selected, ordering)
    key = snapshots.key(query)
    if not drift and offset == 0:
        snapshots.take(key, [c.id for c in selected])
    snapshot = None if drift else snapshots.get(key)
    if snapshot is not None:
        total = len(snapshot)
        rows = [by_id[i] for i in snapshot[offset : offset + limit] if i in by_id]
    else:
        total = len(selected)
        rows = selected[offset : offset + limit]
    meta = {
        "limit": limit,
        "next": page_uri(path, query, limit=str(limit), offset=str(offset + limit))
        if offset + limit < total
        else None,
        "offset": offset,
        "previous": page_uri(path, query, limit=str(limit), offset=str(offset - limit))
        if offset - limit >= 0
        else None,
        "total_count": total,
    }
    return Page(meta, rows)
