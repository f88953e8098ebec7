"""python -m intempus: run the Intempus stand-in until SIGINT or SIGTERM (then exit 0)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from intempus.app import create_app
from intempus.settings import DEFAULT_API_KEY, DEFAULT_USER, IntempusSettings
from standin_kit.cli import add_fault_flags, add_listen_flags
from standin_kit.serving import serve_settings

PROG = "intempus"


def _rate(text: str) -> int | None:
    """A positive count, or "off"."""
    if text.strip().lower() in ("off", "none", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (a number, or off)") from None


def build_parser() -> argparse.ArgumentParser:
    d = IntempusSettings()
    p = argparse.ArgumentParser(
        prog="python -m intempus",
        description="Intempus web/v1 stand-in: cases and the resources they point at, with the "
        "real service's quirks and switchable faults. Extras live under /_standin/.",
    )
    add_listen_flags(p, 8270, d.db)
    p.add_argument(
        "--seed", type=int, default=d.seed, help=f"seeds sample data and faults (default {d.seed})"
    )
    p.add_argument(
        "--cases", type=int, default=0, help="sample cases to create in an empty db (default 0)"
    )
    p.add_argument("--user", default=DEFAULT_USER, help=f"API username (default {DEFAULT_USER})")
    p.add_argument(
        "--api-key",
        default=DEFAULT_API_KEY,
        help=f"that user's API key (default {DEFAULT_API_KEY})",
    )
    p.add_argument(
        "--no-basic-auth", action="store_true", help="refuse Authorization: Basic (default: accept)"
    )
    p.add_argument(
        "--lt-start",
        type=int,
        default=d.lt_start,
        help=f"first logical timestamp (default {d.lt_start})",
    )
    p.add_argument(
        "--id-start", type=int, default=d.id_start, help=f"first case id (default {d.id_start})"
    )

    f = p.add_argument_group("faults and limits (all can be changed at run time)")
    add_fault_flags(f)
    f.add_argument(
        "--rate-per-minute",
        type=_rate,
        default=d.rate_per_minute,
        help=f"requests per user in any 60 s, or off (default {d.rate_per_minute})",
    )
    f.add_argument(
        "--rate-per-day",
        type=_rate,
        default=d.rate_per_day,
        help=f"requests per user per UTC day, or off (default {d.rate_per_day})",
    )
    f.add_argument(
        "--lt-late-commit",
        type=float,
        default=0.0,
        metavar="RATE",
        help="share of writes that become visible below an already served Logical-Timestamp "
        "(default 0)",
    )
    f.add_argument("--html-500", action="store_true", help="500s carry an HTML page (default off)")

    s = p.add_argument_group("behaviours the contract leaves open (default: the likely one)")
    s.add_argument(
        "--offset-drift",
        action="store_true",
        help="offset pages read the live table, so deletes during a scan skip rows (default off)",
    )
    s.add_argument(
        "--no-stale-write-lt",
        action="store_true",
        help="write answers show the new logical timestamp (default: POST shows 42, PUT and "
        "PATCH the old one)",
    )
    s.add_argument(
        "--put-creates", action="store_true", help="PUT to a missing id creates it (default 404)"
    )
    s.add_argument(
        "--unique-number",
        action="store_true",
        help="a second case with the same customer and number is a 400 (default allowed)",
    )
    s.add_argument(
        "--delete-cascade",
        action="store_true",
        help="DELETE of a case with work reports deletes it (default 409)",
    )
    s.add_argument(
        "--strict-slash",
        action="store_true",
        help="paths without the trailing slash are 404 (default served)",
    )
    s.add_argument(
        "--cursor-meta-full",
        action="store_true",
        help="cursor pages also carry offset and total_count (default only limit, next, previous)",
    )
    s.add_argument(
        "--filters",
        choices=["full", "minimal"],
        default="full",
        help="minimal: only logical_timestamp__gt and active may filter (default full)",
    )
    return p


def settings_from_args(args: argparse.Namespace) -> IntempusSettings:
    return IntempusSettings(
        db=args.db,
        seed=args.seed,
        cases=args.cases,
        users={args.user: args.api_key},
        basic_auth=not args.no_basic_auth,
        lt_start=args.lt_start,
        id_start=args.id_start,
        error_rate=args.error_rate,
        ambiguous_rate=args.ambiguous_rate,
        latency_ms=args.latency_ms,
        rate_per_minute=args.rate_per_minute,
        rate_per_day=args.rate_per_day,
        lt_late_commit=args.lt_late_commit,
        html_500=args.html_500,
        offset_drift=args.offset_drift,
        stale_write_lt=not args.no_stale_write_lt,
        put_creates=args.put_creates,
        unique_number=args.unique_number,
        delete_cascade=args.delete_cascade,
        strict_slash=args.strict_slash,
        cursor_meta_full=args.cursor_meta_full,
        filters=args.filters,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return serve_settings(PROG, args.host, args.port, lambda: settings_from_args(args), create_app)


if __name__ == "__main__":
    sys.exit(main())
