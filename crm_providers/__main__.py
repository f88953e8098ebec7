"""python -m crm_providers PROVIDER: run one CRM provider stand-in until SIGINT or SIGTERM.

PROVIDER is hubspot, salesforce or pipedrive. Each listens on its own port (8281, 8282, 8283 by
default); run three processes for all three.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from crm_providers.core.settings import CommonSettings, WebhookSettings
from crm_providers.hubspot import HubSpotLimits, HubSpotSettings
from crm_providers.hubspot import create_app as hubspot_app
from crm_providers.pipedrive import PipedriveLimits, PipedriveSettings
from crm_providers.pipedrive import create_app as pipedrive_app
from crm_providers.salesforce import SalesforceLimits, SalesforceSettings
from crm_providers.salesforce import create_app as salesforce_app
from standin_kit.serving import serve

PORTS = {"hubspot": 8281, "salesforce": 8282, "pipedrive": 8283}


def _common(p: argparse.ArgumentParser, provider: str) -> None:
    p.add_argument(
        "--host",
        metavar="ADDRESS",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        metavar="PORT",
        type=int,
        default=PORTS[provider],
        help=f"port to listen on; 0 picks a free one (default: {PORTS[provider]})",
    )
    p.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=1,
        help="seeds ids, sample records and fault draws (default: 1)",
    )
    p.add_argument(
        "--records",
        metavar="N",
        type=int,
        default=0,
        help="sample records per object at start (default: 0)",
    )
    p.add_argument(
        "--snapshot",
        default=None,
        metavar="FILE",
        help="JSON file the records are loaded from at start and saved to at stop "
        "(default: none, memory only)",
    )
    w = p.add_argument_group("webhooks (change notifications)")
    w.add_argument(
        "--webhook-url",
        metavar="URL",
        default=None,
        help="where to POST change notifications (default: none, events queue up)",
    )
    w.add_argument(
        "--webhook-attempts",
        metavar="N",
        type=int,
        default=5,
        help="attempts per delivery, the first included (default: 5)",
    )
    w.add_argument(
        "--webhook-backoff",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="seconds before the first retry (default: 1)",
    )
    w.add_argument(
        "--webhook-backoff-factor",
        metavar="FACTOR",
        type=float,
        default=2.0,
        help="each retry waits this many times longer (default: 2)",
    )
    f = p.add_argument_group(
        "faults (all off by default; PATCH /_standin/faults changes them at run time)"
    )
    f.add_argument(
        "--error-rate",
        metavar="SHARE",
        type=float,
        default=0.0,
        help="share of API requests answered 500 before any change (default: 0)",
    )
    f.add_argument(
        "--ambiguous-rate",
        metavar="SHARE",
        type=float,
        default=0.0,
        help="share of successful writes answered 500 after commit (default: 0)",
    )
    f.add_argument(
        "--latency-ms",
        metavar="MS",
        type=float,
        default=0.0,
        help="milliseconds added to each API request (default: 0)",
    )
    f.add_argument(
        "--duplicate-rate",
        metavar="SHARE",
        type=float,
        default=0.0,
        help="share of webhook deliveries sent twice (default: 0)",
    )
    f.add_argument(
        "--reorder-rate",
        metavar="SHARE",
        type=float,
        default=0.0,
        help="chance two neighbouring webhook events swap places (default: 0)",
    )
    f.add_argument(
        "--no-cursor-drift",
        action="store_true",
        help="fix a modified-since listing at its first page instead of re-reading the live "
        "table at each page (default: the cursor drifts)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crm_providers",
        description="Stand-ins of three CRM providers (HubSpot-like, Salesforce-like, "
        "Pipedrive-like), one per process. Run python -m crm_providers PROVIDER --help for "
        "a provider's flags.",
    )
    sub = parser.add_subparsers(dest="provider", required=True, metavar="PROVIDER")

    hs = sub.add_parser("hubspot", help="HubSpot-like CRM v3 objects API (default port 8281)")
    _common(hs, "hubspot")
    g = hs.add_argument_group("limits")
    g.add_argument(
        "--burst-limit",
        metavar="N",
        type=int,
        default=100,
        help="requests per rolling window (default: 100)",
    )
    g.add_argument(
        "--burst-window",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="the rolling window in seconds (default: 10)",
    )
    g.add_argument(
        "--daily-limit",
        metavar="N",
        type=int,
        default=250_000,
        help="requests per day (default: 250000)",
    )
    g.add_argument(
        "--search-per-second",
        metavar="N",
        type=int,
        default=4,
        help="search requests per second (default: 4)",
    )
    m = hs.add_argument_group("markers")
    m.add_argument(
        "--app-id",
        metavar="ID",
        type=int,
        default=4242,
        help="our app's id, the sourceId of API writes (default: 4242)",
    )
    m.add_argument(
        "--portal-id",
        metavar="ID",
        type=int,
        default=62515,
        help="the account id in webhook events (default: 62515)",
    )
    m.add_argument(
        "--client-secret",
        metavar="SECRET",
        default="standin-secret",
        help="signs webhook deliveries (default: standin-secret)",
    )

    sf = sub.add_parser("salesforce", help="Salesforce-like REST API v60.0 (default port 8282)")
    _common(sf, "salesforce")
    g = sf.add_argument_group("limits")
    g.add_argument(
        "--allocation",
        metavar="N",
        type=int,
        default=100_000,
        help="API requests per rolling window (default: 100000)",
    )
    g.add_argument(
        "--window",
        metavar="SECONDS",
        type=float,
        default=86_400.0,
        help="the rolling window in seconds (default: 86400, 24 hours)",
    )
    g.add_argument(
        "--query-batch-size",
        metavar="N",
        type=int,
        default=2000,
        help="records per query batch, 200 to 2000 (default: 2000)",
    )

    pd = sub.add_parser("pipedrive", help="Pipedrive-like API v2 (default port 8283)")
    _common(pd, "pipedrive")
    g = pd.add_argument_group("limits")
    g.add_argument(
        "--daily-tokens",
        metavar="N",
        type=int,
        default=30_000,
        help="token budget per day (default: 30000)",
    )
    g.add_argument(
        "--burst-limit",
        metavar="N",
        type=int,
        default=20,
        help="requests per rolling burst window (default: 20)",
    )
    g.add_argument(
        "--burst-window",
        metavar="SECONDS",
        type=float,
        default=2.0,
        help="the burst window in seconds (default: 2)",
    )
    g.add_argument(
        "--abuse-after",
        metavar="N",
        type=int,
        default=None,
        help="429s within 10 minutes that bring a 403 block (default: never)",
    )
    g.add_argument(
        "--abuse-block",
        metavar="SECONDS",
        type=float,
        default=600.0,
        help="seconds the 403 block lasts (default: 600)",
    )
    g.add_argument(
        "--integration-user-id",
        metavar="ID",
        type=int,
        default=9001,
        help="user id of our API token, meta.user_id of our writes (default: 9001)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> CommonSettings:
    """The provider's settings model from the parsed flags (``ValidationError`` when invalid)."""
    common: dict[str, Any] = {
        "seed": args.seed,
        "records": args.records,
        "snapshot": args.snapshot,
        "error_rate": args.error_rate,
        "ambiguous_rate": args.ambiguous_rate,
        "latency_ms": args.latency_ms,
        "duplicate_rate": args.duplicate_rate,
        "reorder_rate": args.reorder_rate,
        "cursor_drift": not args.no_cursor_drift,
        "webhook": WebhookSettings(
            url=args.webhook_url,
            max_attempts=args.webhook_attempts,
            backoff_s=args.webhook_backoff,
            backoff_factor=args.webhook_backoff_factor,
        ),
    }
    if args.provider == "hubspot":
        limits = HubSpotLimits(
            burst_limit=args.burst_limit,
            burst_window_s=args.burst_window,
            daily_limit=args.daily_limit,
            search_per_second=args.search_per_second,
        )
        return HubSpotSettings(
            **common, limits=limits, app_id=args.app_id, portal_id=args.portal_id,
            client_secret=args.client_secret,
        )  # fmt: skip
    if args.provider == "salesforce":
        return SalesforceSettings(
            **common,
            limits=SalesforceLimits(allocation=args.allocation, window_s=args.window),
            query_batch_size=args.query_batch_size,
        )
    limits_pd = PipedriveLimits(
        daily_tokens=args.daily_tokens,
        burst_limit=args.burst_limit,
        burst_window_s=args.burst_window,
        abuse_after=args.abuse_after,
        abuse_block_s=args.abuse_block,
    )
    return PipedriveSettings(
        **common, limits=limits_pd, integration_user_id=args.integration_user_id
    )


def _app(provider: str, settings: CommonSettings) -> web.Application:
    makers: dict[str, Callable[[Any], web.Application]] = {
        "hubspot": hubspot_app,
        "salesforce": salesforce_app,
        "pipedrive": pipedrive_app,
    }
    return makers[provider](settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as error:
        parser.error(str(error).replace("\n", " "))
    target = settings.webhook.url or "nowhere yet (PATCH /_standin/webhooks)"

    def ready(_: web.Application, port: int) -> str:
        return (
            f"crm_providers {args.provider} listening on http://{args.host}:{port} "
            f"(seed {settings.seed}, {settings.records} records per object, webhooks to {target})"
        )

    # On SIGINT or SIGTERM the cleanup stops the webhook emitter and saves the snapshot.
    return serve(
        "crm_providers", args.host, args.port, lambda: _app(args.provider, settings), ready
    )


if __name__ == "__main__":
    sys.exit(main())
