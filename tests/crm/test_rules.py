"""The rule language: what it allows, what it refuses before anything runs, and which rule
decides."""

from __future__ import annotations

import pytest

from integration.pipelines.crm.canonical import FIELDS
from integration.pipelines.crm.rules import Facts, Rule, RuleError, Rules


def rules(*pairs: tuple[str, str], direction: str = "out") -> Rules:
    return Rules(
        [Rule(object="contact", direction=direction, when=w, then=t) for w, t in pairs],  # type: ignore[arg-type]
        FIELDS,
    )


def facts(changed: tuple[str, ...] = (), archived: bool = False, **record: object) -> Facts:
    return Facts(record, frozenset(changed), archived)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "email.lower() == 'x'",
        "(lambda: 1)()",
        "[x for x in 'ab']",
        "email if True else None",
        "changed('email')",
        "len(email) > 3",
        "nickname == 'x'",
    ],
)
def test_anything_outside_the_language_is_refused_before_it_runs(text: str) -> None:
    with pytest.raises(RuleError, match="rule 0"):
        rules((text, "skip"))


def test_the_first_matching_rule_decides_and_says_which_it_was() -> None:
    book = rules(
        ("lifecycle_stage == 'other'", "skip"),
        ("lifecycle_stage not in ('lead', 'customer')", "archive"),
    )
    assert book.decide("contact", "out", facts(lifecycle_stage="other")).describe() == (
        "skip (rule 0)"
    )
    assert book.decide("contact", "out", facts(lifecycle_stage="subscriber")).rule == 1
    assert book.decide("contact", "out", facts(lifecycle_stage="lead")).action == "upsert"


def test_changed_sees_only_what_changed_since_both_sides_agreed() -> None:
    book = rules(("changed(email) and not archived", "update_only"))
    assert book.decide("contact", "out", facts(("email",), email="a@b.c")).action == ("update_only")
    assert book.decide("contact", "out", facts(("phone",), email="a@b.c")).action == "upsert"
    assert book.decide("contact", "out", facts(("email",), True)).action == "upsert"


def test_a_rule_applies_only_in_its_direction() -> None:
    book = rules(("True", "skip"), direction="in")
    assert book.decide("contact", "in", facts()).action == "skip"
    assert book.decide("contact", "out", facts()).action == "upsert"


def test_comparing_with_a_missing_value_is_false_not_an_error() -> None:
    book = rules(("last_name > 'M'", "skip"))
    assert book.decide("contact", "out", facts(last_name=None)).action == "upsert"
