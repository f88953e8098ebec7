"""python -m our_api: run the stand-in until SIGINT or SIGTERM (then exit 0).

A busy port, or settings out of range, is reported on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from our_api.app import create_app
from our_api.settings import OurApiSettings
from standin_kit.serving import serve_settings

PROG = "our_api"
_DESCRIPTION = (
    "OurAPI stand-in: serves the OurAPI contract from a SQLite file, with faults available for "
    "tests (all off by default; they can also be changed at run time with PATCH "
    "/_standin/faults)."
)


def _says(text: str, default: object) -> str:
    """A help text ending in its default, written as one would type it."""
    shown = "none" if default is None else str(default)
    return f"{text} (default: {shown})"


def build_parser() -> argparse.ArgumentParser:
    d = OurApiSettings()
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=_DESCRIPTION)
    parser.add_argument(
        "--host", default="127.0.0.1", help=_says("address to listen on", "127.0.0.1")
    )
    parser.add_argument(
        "--port", type=int, default=8266, help=_says("port to listen on, 0 for any free one", 8266)
    )
    parser.add_argument("--db", default=d.db, help=_says('SQLite file, or ":memory:"', d.db))
    parser.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help=_says("share answered 500", 0),
    )
    parser.add_argument(
        "--ambiguous-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help=_says("share of writes committed, then answered 500", 0),
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help=_says("delay added per request", 0),
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="RPS",
        help=_says("requests per second, beyond that 429", None),
    )
    parser.add_argument(
        "--late-landing-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help=_says("share of POST/PATCH writes held, then applied even if the client left", 0),
    )
    parser.add_argument(
        "--late-landing-s",
        type=float,
        default=d.late_landing_s,
        metavar="SECONDS",
        help=_says("how long such a write is held", d.late_landing_s),
    )
    parser.add_argument(
        "--late-landing-paths",
        default=None,
        metavar="TEXT",
        help=_says('only writes whose path contains TEXT land late, e.g. "/messages"', "all"),
    )
    parser.add_argument(
        "--seed", type=int, default=None, metavar="N", help=_says("seed of the fault RNG", "random")
    )
    parser.add_argument(
        "--null-sink",
        action="store_true",
        help="store nothing, answer at once, for benchmarks (default: off)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # On SIGINT or SIGTERM the cleanup contexts land held writes, commit pending ones and close
    # the database; 5 s leaves a held write time to land.
    return serve_settings(
        PROG,
        args.host,
        args.port,
        lambda: OurApiSettings(
            db=args.db,
            error_rate=args.error_rate,
            ambiguous_rate=args.ambiguous_rate,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit,
            late_landing_rate=args.late_landing_rate,
            late_landing_s=args.late_landing_s,
            late_landing_paths=args.late_landing_paths,
            seed=args.seed,
            null_sink=args.null_sink,
        ),
        create_app,
        db_shown=lambda settings: "nowhere (null sink)" if settings.null_sink else settings.db,
        shutdown_timeout=5.0,
    )


if __name__ == "__main__":
    sys.exit(main())
