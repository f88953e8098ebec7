"""python -m crm_internal: run our internal system's stand-in until SIGINT or SIGTERM (then
exit 0)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crm_internal.app import create_app
from crm_internal.settings import CrmInternalSettings
from standin_kit.cli import add_fault_flags, add_listen_flags
from standin_kit.serving import serve_settings

PROG = "crm_internal"


def build_parser() -> argparse.ArgumentParser:
    d = CrmInternalSettings()
    p = argparse.ArgumentParser(
        prog="python -m crm_internal",
        description="Our internal system for the CRM sync: contacts and companies with versions, "
        "one change feed with tombstones, optimistic locking and idempotent creates. Extras live "
        "under /_standin/.",
    )
    add_listen_flags(p, 8290, d.db)
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
        lambda: CrmInternalSettings(
            db=args.db,
            seed=args.seed,
            error_rate=args.error_rate,
            ambiguous_rate=args.ambiguous_rate,
            latency_ms=args.latency_ms,
        ),
        create_app,
    )


if __name__ == "__main__":
    sys.exit(main())
