"""``python -m devtools.bench.bigchat_frozen --frozen-at UNIX [big_chat's flags]``: the BigChat
stand-in, unchanged, with its clock stopped.

With a running clock the world keeps growing while the bench runs, so each run would see a
different workload and a conversation still going when a run stops would fail verification for
events that happened after it. Stopped at ``--frozen-at``, the history is fixed: every run
applies exactly the same events, and verify compares against the same ground truth.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web

from big_chat.__main__ import build_parser, settings_from_args
from big_chat.app import create_app


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.prog = "python -m devtools.bench.bigchat_frozen"
    parser.add_argument("--frozen-at", type=float, required=True, help="BigChat's now, fixed")
    args = parser.parse_args(argv)
    frozen_at: float = args.frozen_at
    values = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "frozen_at"})
    app = create_app(settings_from_args(values), clock=lambda: frozen_at)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=lambda _: print(f"BigChat (frozen at {frozen_at}) on {args.port}", flush=True),
        access_log=None,
        shutdown_timeout=2.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
