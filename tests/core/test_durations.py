"""``parse_duration``: the forms people type, and a clear refusal.

Run against both copies, the worker's (``integration.core.durations``) and the BigChat
stand-in's (``big_chat.durations``): they are twins because the worker shares no code with its
stand-ins, and these tests keep the twins accepting and refusing the same texts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import ModuleType

import pytest

import big_chat.durations
import integration.core.durations


@pytest.fixture(
    params=[integration.core.durations, big_chat.durations], ids=["integration", "big_chat"]
)
def durations(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


@pytest.fixture
def parse_duration(durations: ModuleType) -> Callable[[str], float]:
    parse: Callable[[str], float] = durations.parse_duration
    return parse


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172_800),
        ("1d2h3m4s", 93_784),
        ("1.5h", 5400),
        (" 10M ", 600),
        ("0", 0),
    ],
)
def test_a_duration_is_read_as_seconds(
    parse_duration: Callable[[str], float], text: str, seconds: float
) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "x", "10x", "-5", "30m1h", "1h1h", "h", "1 h"])
def test_a_bad_duration_is_refused_with_the_forms_that_work(
    parse_duration: Callable[[str], float], text: str
) -> None:
    with pytest.raises(ValueError, match="not a duration") as refused:
        parse_duration(text)
    assert "1h30m" in str(refused.value)


def test_argparse_shows_the_refusal_itself(
    durations: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--for", type=durations.parse_duration)
    with pytest.raises(SystemExit):
        parser.parse_args(["--for", "soon"])
    assert "not a duration: 'soon'" in capsys.readouterr().err
    assert issubclass(durations.DurationError, argparse.ArgumentTypeError)
