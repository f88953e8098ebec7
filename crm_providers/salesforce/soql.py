"""Just enough SOQL for a sync: ``SELECT f, ... FROM Object [WHERE c AND c ...]
[ORDER BY f [ASC|DESC]] [LIMIT n]``, a condition being ``field op literal`` (``= != < <= > >=``)
or ``field IN (literal, ...)``. Literals: 'text', numbers, true/false, null, and date-times
(``2026-01-01T00:00:00Z``, ``...000+0000``). Anything else is ``MALFORMED_QUERY``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crm_providers.core.clock import parse_instant

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>)|(?P<punct>[(),*])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)
_OPS = ("=", "!=", "<>", "<", "<=", ">", ">=")
DATETIME_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")


class Malformed(ValueError):
    """The query is outside what is understood; the text is Salesforce-like."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Literal:
    value: Any
    is_datetime: bool = False


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    object: str
    where: tuple[Condition, ...]
    order_by: str | None
    descending: bool
    limit: int | None


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise Malformed(f"unexpected token near: '{text[pos : pos + 20]}'")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise Malformed("unexpected end of query")
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].upper() == word:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            found = self.peek()
            raise Malformed(f"expecting '{word}', found '{found[1] if found else 'end'}'")

    def name(self) -> str:
        kind, value = self.next()
        if kind != "word":
            raise Malformed(f"expecting a field name, found '{value}'")
        return value

    def literal(self) -> Literal:
        kind, value = self.next()
        if kind == "str":
            return Literal(re.sub(r"\\(.)", r"\1", value[1:-1]))
        if kind == "dt":
            return Literal(parse_instant(value), is_datetime=True)
        if kind == "num":
            return Literal(float(value))
        if kind == "word" and value.lower() in ("true", "false"):
            return Literal(value.lower() == "true")
        if kind == "word" and value.lower() == "null":
            return Literal(None)
        raise Malformed(f"unexpected token: '{value}'")

    def condition(self) -> Condition:
        field = self.name()
        if self.keyword("IN"):
            if self.next() != ("punct", "("):
                raise Malformed("expecting '(' after IN")
            values = [self.literal()]
            while self.peek() == ("punct", ","):
                self.i += 1
                values.append(self.literal())
            if self.next() != ("punct", ")"):
                raise Malformed("expecting ')'")
            return Condition(field, "IN", tuple(values))
        kind, op = self.next()
        if kind != "op" or op not in _OPS:
            raise Malformed(f"expecting an operator, found '{op}'")
        return Condition(field, "!=" if op == "<>" else op, (self.literal(),))


def parse(text: str, fields_of: Callable[[str], tuple[str, ...] | None]) -> Query:
    """The query, checked against the object's fields (``fields_of`` gives None for an unknown
    object)."""
    p = _Parser(text)
    p.expect_keyword("SELECT")
    fields = [p.name()]
    while p.peek() == ("punct", ","):
        p.i += 1
        fields.append(p.name())
    p.expect_keyword("FROM")
    obj = p.name()
    known = fields_of(obj)
    if known is None:
        raise Malformed(f"sObject type '{obj}' is not supported.", "INVALID_TYPE")
    where: list[Condition] = []
    if p.keyword("WHERE"):
        where.append(p.condition())
        while p.keyword("AND"):
            where.append(p.condition())
        if p.peek() is not None and p.peek()[1].upper() == "OR":  # type: ignore[index]
            raise Malformed("OR is not supported by this stand-in")
    order_by, descending = None, False
    if p.keyword("ORDER"):
        p.expect_keyword("BY")
        order_by = p.name()
        if p.keyword("DESC"):
            descending = True
        else:
            p.keyword("ASC")
    limit = None
    if p.keyword("LIMIT"):
        kind, value = p.next()
        if kind != "num" or not value.isdigit():
            raise Malformed("LIMIT takes a whole number")
        limit = int(value)
    if p.peek() is not None:
        raise Malformed(f"unexpected token: '{p.peek()[1]}'")  # type: ignore[index]
    lookup = {name.lower(): name for name in known}

    def canonical(name: str) -> str:
        if name.lower() not in lookup:
            raise Malformed(f"No such column '{name}' on entity '{obj}'.", "INVALID_FIELD")
        return lookup[name.lower()]

    return Query(
        tuple(canonical(f) for f in fields),
        obj,
        tuple(Condition(canonical(c.field), c.op, c.values) for c in where),
        canonical(order_by) if order_by else None,
        descending,
        limit,
    )


def matches(condition: Condition, value: Any) -> bool:
    """``value`` (a stored value; date-times as Unix seconds) against the condition."""
    wanted = [lit.value for lit in condition.values]
    if condition.op == "IN":
        return value in wanted
    right = wanted[0]
    if condition.op == "=":
        return bool(value == right)
    if condition.op == "!=":
        return bool(value != right)
    if value is None or right is None:
        return False
    if isinstance(value, str) != isinstance(right, str):
        value, right = str(value), str(right)
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return compare[condition.op](value, right)
