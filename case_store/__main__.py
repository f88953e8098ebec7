"""python -m case_store: run the local case store until SIGINT or SIGTERM (then exit 0)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from case_store.app import create_app
from case_store.settings import CaseStoreSettings
from standin_kit.cli import add_fault_flags, add_listen_flags
from standin_kit.serving import serve_settings

PROG = "case_store"


def build_parser() -> argparse.ArgumentParser:
    d = CaseStoreSettings()
    p = argparse.ArgumentParser(
        prog="python -m case_store",
        description="The local case store: cases with versions, a change feed with tombstones, "
        "optimistic locking and idempotent creates. Extras live under /_standin/.",
    )
    add_listen_flags(p, 8269, d.db)
    p.add_argument(
        "--tombstone-days",
        type=float,
        default=d.tombstone_days,
        help=f"days a tombstone stays in the change feed (default {d.tombstone_days:g})",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"seeds the faults (default {d.seed})")
    f = p.add_argument_group("faults (all can be changed at run time)")
    add_fault_flags(f)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return serve_settings(
        PROG,
        args.host,
        args.port,
        lambda: CaseStoreSettings(
            db=args.db,
            tombstone_days=args.tombstone_days,
            seed=args.seed,
            error_rate=args.error_rate,
            ambiguous_rate=args.ambiguous_rate,
            latency_ms=args.latency_ms,
        ),
        create_app,
    )


if __name__ == "__main__":
    sys.exit(main())
