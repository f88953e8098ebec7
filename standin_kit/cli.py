"""Flags that mean the same in several stand-ins' ``python -m``, with the same help texts."""

from __future__ import annotations

import argparse


def add_listen_flags(parser: argparse.ArgumentParser, port: int, db: str) -> None:
    """``--host``, ``--port`` (default ``port``) and ``--db`` (default ``db``)."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=port, help=f"port to listen on (default {port})"
    )
    parser.add_argument("--db", default=db, help=f"SQLite file, or :memory: (default {db})")


def add_fault_flags(group: argparse._ArgumentGroup) -> None:
    """``--error-rate``, ``--ambiguous-rate`` and ``--latency-ms``, all 0 by default (the faults
    the settings' ``FaultRates`` hold)."""
    group.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests answered 500 (default 0)"
    )
    group.add_argument(
        "--ambiguous-rate",
        type=float,
        default=0.0,
        help="share of successful writes committed, then answered 500 (default 0)",
    )
    group.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added to each request (default 0)"
    )
