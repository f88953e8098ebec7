"""Names for sample records: deterministic, drawn from a seeded ``random.Random``."""

from __future__ import annotations

import random

FIRST = ("Ada", "Ben", "Chloe", "Dev", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaja")
LAST = ("Adler", "Berg", "Costa", "Dahl", "Engel", "Fischer", "Gomez", "Holm", "Ito", "Jensen")
WORDS = ("Acme", "Birch", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris")
SUFFIX = ("Ltd", "GmbH", "AS", "Inc", "Group", "Partners")


def person(rng: random.Random, index: int) -> tuple[str, str, str]:
    """First name, last name and a unique e-mail address."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return first, last, f"{first.lower()}.{last.lower()}.{index}@example.com"


def company(rng: random.Random, index: int) -> tuple[str, str]:
    """A company name and a unique domain."""
    word, suffix = rng.choice(WORDS), rng.choice(SUFFIX)
    return f"{word} {suffix} {index}", f"{word.lower()}{index}.example.com"
