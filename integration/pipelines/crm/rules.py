"""Rules: what to do with one record, decided from its data by a connection's ordered list.

A rule is ``{object, direction, when, then}``; the first rule whose ``when`` holds decides, and a
record no rule matches is upserted. ``when`` is a small expression language over the canonical
fields, parsed once at start with Python's ``ast`` into a whitelisted tree and evaluated by
walking it: there is no ``eval``, no attribute access, no calls but ``changed(field)``, no names
but the record's fields (plus ``archived``). Allowed: comparisons (``== != < <= > >= in not
in``), ``and`` / ``or`` / ``not``, literals (strings, numbers, ``True``/``False``/``None``,
tuples, lists and sets of them) and ``changed(field)`` (the field differs from what both sides last
agreed on). A rule that cannot be parsed is refused at start, naming the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Action = Literal["upsert", "create_only", "update_only", "skip", "archive", "delete"]
Direction = Literal["out", "in"]
"""``out``: our system → the provider; ``in``: the provider → our system."""

EXTRA_NAMES = frozenset({"archived"})
_COMPARE: dict[type[ast.cmpop], Any] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a is not None and b is not None and a < b,
    ast.LtE: lambda a, b: a is not None and b is not None and a <= b,
    ast.Gt: lambda a, b: a is not None and b is not None and a > b,
    ast.GtE: lambda a, b: a is not None and b is not None and a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class RuleError(ValueError):
    """A rule that is not in the language, as one line naming what is wrong."""


def _check(node: ast.AST, names: frozenset[str]) -> None:
    """Refuse anything outside the whitelist, before the rule is ever evaluated."""
    if isinstance(node, ast.Expression):
        _check(node.body, names)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, names)
    elif isinstance(node, ast.Compare):
        if not all(type(op) in _COMPARE for op in node.ops):
            raise RuleError("only == != < <= > >= in and not in compare")
        for part in (node.left, *node.comparators):
            _check(part, names)
    elif isinstance(node, ast.Name):
        if node.id not in names:
            raise RuleError(f"unknown field {node.id!r} (known: {', '.join(sorted(names))})")
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise RuleError(f"a literal of type {type(node.value).__name__} is not allowed")
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for item in node.elts:
            if not isinstance(item, ast.Constant):
                raise RuleError("a collection may hold literals only")
            _check(item, names)
    elif isinstance(node, ast.Call):
        if not (
            isinstance(node.func, ast.Name)
            and node.func.id == "changed"
            and len(node.args) == 1
            and not node.keywords
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in names
        ):
            raise RuleError("the only call is changed(<field>)")
    else:
        raise RuleError(f"{type(node).__name__} is not part of the rule language")


@dataclass(frozen=True)
class Facts:
    """What a rule sees: the record's canonical fields, and those that changed since both sides
    last agreed (all of them, for a record met for the first time)."""

    record: Mapping[str, Any]
    changed: frozenset[str]
    archived: bool = False


def _value(node: ast.AST, facts: Facts) -> Any:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_value(v, facts) for v in node.values)
        return any(_value(v, facts) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return not _value(node.operand, facts)
    if isinstance(node, ast.Compare):
        left = _value(node.left, facts)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _value(right_node, facts)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Name):
        return facts.archived if node.id == "archived" else facts.record.get(node.id)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return frozenset(_value(item, facts) for item in node.elts)
    if isinstance(node, ast.Call):
        assert isinstance(node.args[0], ast.Name)
        return node.args[0].id in facts.changed
    raise RuleError(f"{type(node).__name__} is not part of the rule language")  # pragma: no cover


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    object: Literal["contact", "company", "*"] = "*"
    direction: Direction = "out"
    when: str = Field("True", description="an expression over the canonical fields")
    then: Action

    @field_validator("when")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"not an expression: {exc.msg}") from None
        return text


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: int | None
    """The index of the rule that decided (None: no rule matched; the default)."""

    def describe(self) -> str:
        return f"{self.action} (rule {self.rule})" if self.rule is not None else self.action


class Rules:
    """A connection's rules, checked once and evaluated per record."""

    def __init__(self, rules: Sequence[Rule], fields: Mapping[str, Sequence[str]]) -> None:
        self.rules = list(rules)
        self._trees: list[ast.Expression] = []
        for index, rule in enumerate(self.rules):
            names = frozenset(
                name
                for obj, obj_fields in fields.items()
                if rule.object in ("*", obj)
                for name in obj_fields
            )
            tree = ast.parse(rule.when, mode="eval")
            try:
                _check(tree, names | EXTRA_NAMES)
            except RuleError as exc:
                raise RuleError(f"rule {index} ({rule.when!r}): {exc}") from None
            self._trees.append(tree)

    def decide(self, object: str, direction: Direction, facts: Facts) -> Decision:
        for index, (rule, tree) in enumerate(zip(self.rules, self._trees, strict=True)):
            if rule.object not in ("*", object) or rule.direction != direction:
                continue
            if _value(tree.body, facts):
                return Decision(rule.then, index)
        return Decision("upsert", None)
