"""``python -m our_api``: run the stand-in until SIGINT or SIGTERM (then exit 0)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError

from our_api.app import create_app
from our_api.settings import OurApiSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m our_api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8266)
    parser.add_argument("--db", default="our_api.db", help='SQLite file or ":memory:"')
    parser.add_argument("--error-rate", type=float, default=0.0, help="share answered 500")
    parser.add_argument(
        "--ambiguous-rate", type=float, default=0.0, help="share of writes committed, then 500"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added per request")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests/s, then 429")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault RNG")
    parser.add_argument(
        "--null-sink", action="store_true", help="store nothing, answer at once (benchmarks)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = OurApiSettings(
            db=args.db,
            error_rate=args.error_rate,
            ambiguous_rate=args.ambiguous_rate,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit,
            seed=args.seed,
            null_sink=args.null_sink,
        )
    except ValidationError as error:
        print(f"our_api: invalid settings:\n{error}", file=sys.stderr)
        return 2

    def announce(_: str) -> None:
        # Replaces aiohttp's two-line banner; printed once the socket is bound.
        where = "nowhere (null sink)" if settings.null_sink else settings.db
        print(f"our_api listening on http://{args.host}:{args.port} (db: {where})", flush=True)

    # run_app handles SIGINT and SIGTERM: it stops accepting, finishes in-flight requests, runs
    # the cleanup contexts (pending writes committed, database closed) and returns.
    web.run_app(
        create_app(settings),
        host=args.host,
        port=args.port,
        print=announce,
        access_log=None,
        shutdown_timeout=5.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
