"""``python run.py tracos``: placeholder until the TracOS sync lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    parser = commands.add_parser("tracos", help="TracOS work orders <-> ERP files (not yet)")
    parser.set_defaults(entry=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:
    print("tracos: not implemented yet")
    return 1
