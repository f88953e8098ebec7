"""Mappings in and out, and the merge: pure functions, checked on every provider's defaults."""

from __future__ import annotations

import random

import pytest

from integration.core.errors import InvalidInput
from integration.core.merge import merge
from integration.pipelines.crm.mapping import DEFAULTS, to_canonical, to_provider

SAMPLES = {
    "first_name": ["Ann", "Bo", None],
    "last_name": ["Berg", "Ø. Lund", "x" * 200],
    "email": ["a@b.io", None],
    "phone": ["+45 1", None],
    "title": ["CEO", None],
    "lifecycle_stage": ["lead", "customer", None],
    "name": ["Acme", "Ærø ApS"],
    "domain": ["acme.dk", None],
    "city": ["Aarhus", None],
    "industry": ["Retail", None],
}


@pytest.mark.parametrize("provider", sorted(DEFAULTS))
@pytest.mark.parametrize("obj", ["contact", "company"])
def test_what_is_written_reads_back_as_the_same_canonical_fields(provider: str, obj: str) -> None:
    mapping = DEFAULTS[provider][obj]
    rng = random.Random(f"{provider}{obj}")
    for _ in range(200):
        record = {name: rng.choice(SAMPLES[name]) for name in mapping.synced()}
        written = to_provider(obj, mapping, record, where="test")
        # A provider hands every value back as text (HubSpot) or as sent: both read the same.
        as_text = {k: (str(v) if v is not None else None) for k, v in written.items()}
        assert to_canonical(obj, mapping, as_text, where="test") == record


def test_a_value_outside_an_enum_table_is_refused_naming_the_field_and_the_table() -> None:
    mapping = DEFAULTS["hubspot"]["contact"]
    with pytest.raises(InvalidInput, match=r"contact.lifecycle_stage \(from lifecyclestage\)"):
        to_canonical("contact", mapping, {"lifecyclestage": "evangelist"}, where="hs 1")


def test_a_bad_email_is_refused_by_the_canonical_schema_naming_the_field() -> None:
    mapping = DEFAULTS["salesforce"]["contact"]
    with pytest.raises(InvalidInput, match=r"contact.email: Value error, not an e-mail"):
        to_canonical("contact", mapping, {"Email": "not-mail", "LastName": "X"}, where="sf")


def test_a_create_without_a_field_the_provider_requires_is_refused_before_any_call() -> None:
    mapping = DEFAULTS["pipedrive"]["company"]
    with pytest.raises(InvalidInput, match="cannot be created without name"):
        to_provider("company", mapping, {"name": None}, create=True, where="pd")


def test_a_field_only_one_side_changed_takes_that_sides_value() -> None:
    m = merge(
        ["a", "b"],
        {"a": 1, "b": 1},
        {"a": 2, "b": 1},
        {"a": 1, "b": 3},
        provider_at=5,
        internal_at=1,
    )
    assert m.result == {"a": 2, "b": 3} and not m.clashes
    assert m.for_provider == {"b": 3} and m.for_internal == {"a": 2}


def test_a_field_both_changed_goes_to_the_later_writer_and_a_tie_to_our_system() -> None:
    later = merge(["a"], {"a": 0}, {"a": 1}, {"a": 2}, provider_at=9, internal_at=3)
    tie = merge(["a"], {"a": 0}, {"a": 1}, {"a": 2}, provider_at=3, internal_at=3)
    assert later.result == {"a": 1} and later.clashes[0].why == "later"
    assert tie.result == {"a": 2} and tie.clashes[0].why == "tie"


def test_an_owned_field_keeps_its_owners_value_even_when_only_the_other_side_changed_it() -> None:
    m = merge(
        ["a"],
        {"a": 0},
        {"a": 1},
        {"a": 0},
        provider_at=9,
        internal_at=1,
        owner=lambda name: "internal",
    )
    assert m.result == {"a": 0} and m.for_provider == {"a": 0}
