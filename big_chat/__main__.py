"""python -m big_chat: run the BigChat stand-in.

Starts at once (the world is generated lazily), prints one line saying where it listens and when
its world began, and exits 0 on SIGINT or SIGTERM (web.run_app handles both). A busy port is one
line on stderr and exit status 2.

Live mode (--live) behaves like the real service for a client that runs along with it: the world
runs on the real clock, /events serves each event once (unreplayable is forced on), and
/conversations/{id} keeps the full history unless --history-mode start_only says otherwise.
--script FILE.json serves a scripted world (see big_chat/scripted.py) instead of a generated one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from big_chat.app import create_app, current_world
from big_chat.durations import parse_duration
from big_chat.scripted import ScriptedWorld
from big_chat.settings import BigChatSettings
from standin_kit.serving import serve

__all__ = ["build_parser", "main", "parse_duration", "parse_range", "settings_from_args"]

PROG = "big_chat"
_DESCRIPTION = (
    "BigChat stand-in: serves the BigChat contract from a deterministic simulated world, with "
    "the real service's quirks and faults available (all off by default). --live runs it like "
    "the real service: real clock, each event served once by /events."
)
_NOT_SETTINGS = ("host", "port", "script")


def parse_range(text: str) -> tuple[int, int]:
    """``MIN-MAX`` (or a single number for both)."""
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a range: {text!r} (try 2-8)") from None


def _says(text: str, default: object) -> str:
    """A help text ending in its default, written as one would type it."""
    if isinstance(default, tuple):
        shown = "-".join(map(str, default))
    elif default is None:
        shown = "none"
    elif isinstance(default, float) and default.is_integer():
        shown = str(int(default))
    else:
        shown = str(default)
    return f"{text} (default: {shown})"


def build_parser() -> argparse.ArgumentParser:
    d = BigChatSettings()
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=_DESCRIPTION)
    p.add_argument("--host", default="127.0.0.1", help=_says("address to listen on", "127.0.0.1"))
    p.add_argument(
        "--port", type=int, default=8267, help=_says("port to listen on, 0 for any free one", 8267)
    )

    w = p.add_argument_group("world")
    w.add_argument(
        "--seed", type=int, metavar="N", default=d.seed, help=_says("the world follows from it", 1)
    )
    w.add_argument(
        "--advisors",
        type=int,
        metavar="N",
        default=d.advisors,
        help=_says("advisor ids are 1..N", d.advisors),
    )
    w.add_argument(
        "--conversation-rate",
        type=float,
        metavar="PER_S",
        default=d.conversation_rate,
        help=_says("new conversations per second", d.conversation_rate),
    )
    w.add_argument(
        "--page-size",
        type=int,
        metavar="N",
        default=d.page_size,
        help=_says("events per page", d.page_size),
    )
    w.add_argument(
        "--history",
        type=parse_duration,
        default=d.history,
        metavar="DURATION",
        help=_says("how long the world has already run at start: 90, 90s, 10m, 1h30m, 2d", 0),
    )
    w.add_argument(
        "--epoch",
        type=float,
        metavar="UNIX_S",
        default=None,
        help=_says("Unix time the world began (overrides --history)", "now minus --history"),
    )
    w.add_argument(
        "--messages",
        type=parse_range,
        default=(d.messages_min, d.messages_max),
        metavar="MIN-MAX",
        help=_says("messages per conversation", (d.messages_min, d.messages_max)),
    )
    w.add_argument(
        "--message-gap",
        type=parse_range,
        default=(d.message_gap_min_s, d.message_gap_max_s),
        metavar="MIN-MAX",
        help=_says(
            "seconds between two events of a conversation (MIN may be 0)",
            (d.message_gap_min_s, d.message_gap_max_s),
        ),
    )
    w.add_argument(
        "--transfer-probability",
        type=float,
        metavar="P",
        default=d.transfer_probability,
        help=_says("chance of a TRANSFER after each message", d.transfer_probability),
    )
    w.add_argument(
        "--script",
        type=Path,
        default=None,
        metavar="FILE.json",
        help=_says("serve this scripted world instead (see big_chat/scripted.py)", None),
    )
    w.add_argument(
        "--live",
        action="store_true",
        help="like the real service: real clock, each event served once by /events (default: off)",
    )

    q = p.add_argument_group("quirks of the real service's data (off by default)")
    for flag, field, text in (
        ("--repeat-end-rate", "repeat_end_rate", "share of conversations with extra ENDs"),
        ("--repeat-end-max", "repeat_end_max", "at most this many extra ENDs"),
        ("--after-end-rate", "after_end_rate", "share of conversations with a MESSAGE after END"),
        ("--missing-start-rate", "missing_start_rate", "share whose START /events never serves"),
        ("--wrong-old-advisor-rate", "wrong_old_advisor_rate", "share of TRANSFERs whose"
         " old_advisor_id is wrong"),
        ("--repeat-text-rate", "repeat_text_rate", "share of MESSAGEs repeating an earlier text"
         " (or ok/yes/thanks), maybe with whitespace around it"),
        ("--same-second-rate", "same_second_rate", "share of MESSAGEs and TRANSFERs in the same"
         " second as the event before them"),
        ("--transfer-before-start-rate", "transfer_before_start_rate", "share of conversations"
         " whose TRANSFERs become one dated 1-60 s before the START"),
    ):  # fmt: skip
        default = getattr(d, field)
        metavar = "N" if isinstance(default, int) else "SHARE"
        q.add_argument(
            flag, type=type(default), default=default, metavar=metavar, help=_says(text, default)
        )
    q.add_argument(
        "--after-end-delay",
        "--after-end-delay-s",
        dest="after_end_delay_s",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help=_says("the after-END MESSAGE comes this long after the END, e.g. 1h", "one gap"),
    )

    f = p.add_argument_group("serving faults (off by default)")
    f.add_argument(
        "--error-rate",
        type=float,
        metavar="SHARE",
        default=d.error_rate,
        help=_says("share of /events 500s", 0),
    )
    f.add_argument(
        "--error-all-routes",
        action="store_true",
        help="500s on every route, not just /events (default: off)",
    )
    f.add_argument(
        "--latency-ms",
        type=int,
        metavar="MS",
        default=d.latency_ms,
        help=_says("added to every answer", 0),
    )
    f.add_argument(
        "--rate-limit",
        type=float,
        default=d.rate_limit,
        metavar="RPS",
        help=_says("requests per second before 429", None),
    )
    f.add_argument(
        "--duplicate-rate",
        type=float,
        metavar="SHARE",
        default=d.duplicate_rate,
        help=_says("share of events served again in a later window", 0),
    )
    f.add_argument(
        "--late-rate",
        type=float,
        metavar="SHARE",
        default=d.late_rate,
        help=_says("share of events served a window late", 0),
    )
    f.add_argument("--shuffle", action="store_true", help="pages not sorted (default: off)")
    f.add_argument(
        "--ignore-end-at",
        action="store_true",
        help="serve events up to now whatever end_at says (default: off)",
    )
    f.add_argument(
        "--unreplayable",
        action="store_true",
        help="each event served once, never again for the same window (default: off)",
    )
    f.add_argument(
        "--history-mode",
        choices=("full", "start_only"),
        default=d.history_mode,
        help=_says("start_only: /conversations/{id} lists only the START", d.history_mode),
    )
    f.add_argument(
        "--next-page-url-override",
        default=None,
        metavar="URL",
        help=_says("replaces every non-null nextPageUrl (malformed links)", None),
    )
    return p


def settings_from_args(args: argparse.Namespace) -> BigChatSettings:
    values: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    values["messages_min"], values["messages_max"] = values.pop("messages")
    values["message_gap_min_s"], values["message_gap_max_s"] = values.pop("message_gap")
    if values["after_end_delay_s"] is not None:
        values["after_end_delay_s"] = round(values["after_end_delay_s"])
    return BigChatSettings.model_validate(values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.error(str(exc))
    world = None
    if args.script is not None:
        try:
            world = ScriptedWorld.from_file(args.script)
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            parser.error(f"--script {args.script}: {exc}")

    def ready(app: web.Application, port: int) -> str:
        return (
            f"BigChat stand-in listening on http://{args.host}:{port} "
            f"(seed {settings.seed}, epoch {current_world(app).epoch:.3f}"
            f"{', live' if settings.live else ''}{', scripted' if world else ''})"
        )

    return serve(PROG, args.host, args.port, lambda: create_app(settings, world=world), ready)


if __name__ == "__main__":
    sys.exit(main())
