"""``python -m big_chat``: run the BigChat stand-in.

Starts at once (the world is generated lazily), prints one line saying where it listens and when
its world began, and exits 0 on SIGINT or SIGTERM (``web.run_app`` handles both).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError

from big_chat.app import WORLD, create_app
from big_chat.settings import BigChatSettings

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m``, ``1h``, ``2h30m``, ``1h0m5s``."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 90s, 10m, 1h, 2h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_range(text: str) -> tuple[int, int]:
    """``MIN-MAX`` (or a single number for both)."""
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a range: {text!r} (try 2-8)") from None


def build_parser() -> argparse.ArgumentParser:
    d = BigChatSettings()
    p = argparse.ArgumentParser(
        prog="python -m big_chat",
        description="BigChat stand-in: serves the BigChat contract from a deterministic world.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8267)

    w = p.add_argument_group("world")
    w.add_argument("--seed", type=int, default=d.seed)
    w.add_argument("--advisors", type=int, default=d.advisors)
    w.add_argument(
        "--conversation-rate", type=float, default=d.conversation_rate, help="new per second"
    )
    w.add_argument("--page-size", type=int, default=d.page_size)
    w.add_argument(
        "--history",
        type=parse_duration,
        default=d.history,
        help="how long the world has already run at start (90s, 10m, 1h, 2h30m)",
    )
    w.add_argument(
        "--epoch", type=float, default=None, help="Unix time the world began (overrides history)"
    )
    w.add_argument(
        "--messages",
        type=parse_range,
        default=(d.messages_min, d.messages_max),
        metavar="MIN-MAX",
        help="messages per conversation",
    )
    w.add_argument(
        "--message-gap",
        type=parse_range,
        default=(d.message_gap_min_s, d.message_gap_max_s),
        metavar="MIN-MAX",
        help="seconds between two events of a conversation",
    )
    w.add_argument("--transfer-probability", type=float, default=d.transfer_probability)

    q = p.add_argument_group("quirks of the real service's data (off by default)")
    q.add_argument("--repeat-end-rate", type=float, default=d.repeat_end_rate)
    q.add_argument("--repeat-end-max", type=int, default=d.repeat_end_max)
    q.add_argument("--after-end-rate", type=float, default=d.after_end_rate)
    q.add_argument("--missing-start-rate", type=float, default=d.missing_start_rate)
    q.add_argument("--wrong-old-advisor-rate", type=float, default=d.wrong_old_advisor_rate)

    f = p.add_argument_group("serving faults (off by default)")
    f.add_argument("--error-rate", type=float, default=d.error_rate, help="share of 500s")
    f.add_argument(
        "--error-all-routes", action="store_true", help="500s on every route, not just /events"
    )
    f.add_argument("--latency-ms", type=int, default=d.latency_ms)
    f.add_argument("--rate-limit", type=float, default=d.rate_limit, metavar="RPS")
    f.add_argument("--duplicate-rate", type=float, default=d.duplicate_rate)
    f.add_argument("--late-rate", type=float, default=d.late_rate)
    f.add_argument("--shuffle", action="store_true")
    f.add_argument("--ignore-end-at", action="store_true")
    f.add_argument("--unreplayable", action="store_true")
    return p


def settings_from_args(args: argparse.Namespace) -> BigChatSettings:
    values = {k: v for k, v in vars(args).items() if k not in ("host", "port")}
    values["messages_min"], values["messages_max"] = values.pop("messages")
    values["message_gap_min_s"], values["message_gap_max_s"] = values.pop("message_gap")
    return BigChatSettings.model_validate(values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.error(str(exc))
    app = create_app(settings)
    epoch = app[WORLD].epoch
    line = (
        f"BigChat stand-in listening on http://{args.host}:{args.port} "
        f"(seed {settings.seed}, epoch {epoch:.3f})"
    )
    # run_app calls `print` once its sites are bound: the line means "ready".
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=lambda _: print(line, flush=True),
        access_log=None,
        shutdown_timeout=2.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
