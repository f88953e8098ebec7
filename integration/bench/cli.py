"""``python run.py bench``: placeholder until the benchmark lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    parser = commands.add_parser("bench", help="benchmark the worker (not yet)")
    parser.set_defaults(entry=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:
    print("bench: not implemented yet")
    return 1
