"""Durations as people type them on a command line: ``90``, ``90s``, ``10m``, ``1h30m``, ``2d``.

One parser, shared by every flag that takes a duration, so that they all accept the same forms
and refuse bad input with the same clear message. It works as an ``argparse`` ``type=``: its error
is an ``argparse.ArgumentTypeError`` (so argparse shows our message, not a generic one) that is
also a ``ValueError`` (so callers outside argparse can catch what they expect).

``big_chat.durations`` is a twin, on purpose: the worker shares no code with the stand-ins it is
tested against (see ``standin_kit``), and they never import the worker. One test runs against
both (tests/core/test_durations.py), so the worker's flags and the stand-ins' take the same forms.
"""

from __future__ import annotations

import argparse
import math
import re

_UNITS = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}
_NUMBER = r"\d+(?:\.\d+)?"
# Units in decreasing order, each at most once: "1h30m" yes, "30m1h" and "1h1h" no.
_DURATION = re.compile("".join(f"(?:(?P<{u}>{_NUMBER}){u})?" for u in _UNITS))
_HINT = "try 90, 90s, 10m, 1h, 1h30m or 2d"


class DurationError(argparse.ArgumentTypeError, ValueError):
    """A text that is not a duration."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a bare number of seconds, or numbers with units d, h, m, s.

    >>> parse_duration("1h30m")
    5400.0
    """
    cleaned = text.strip().lower()
    if re.fullmatch(_NUMBER, cleaned):
        return float(cleaned)
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None:
        raise DurationError(f"not a duration: {text!r} ({_HINT})")
    seconds = sum(float(value) * _UNITS[unit] for unit, value in match.groupdict().items() if value)
    if not math.isfinite(seconds):
        raise DurationError(f"duration too large: {text!r}")
    return seconds
