"""``status`` for a sync run by several workers: the workers, who polls, and per partition its
owner, claim epoch, stored offset and lag (how many of its messages JetStream holds that are not
yet in the inbox table)."""

from __future__ import annotations

import socket

from ..http import mask_url
from ..state.postgres import PostgresStore
from .roles import Membership


async def partition_lines(
    store: PostgresStore,
    sync: str,
    inbox_url: str | None,
    ttl: float,
    *,
    inbox_name: str | None = None,
) -> list[str]:
    """The lines ``status`` prints; none when the state was never run by several workers."""
    membership = Membership(store, sync, f"status-{socket.gethostname()}", 0, ttl)
    rows = await membership.table()
    if not rows:
        return []
    live = await membership.live()
    fence = await store.read("SELECT epoch, holder FROM fences WHERE name = $1", f"poller:{sync}")
    poller = (
        f"{fence[0]['holder']} (fence epoch {fence[0]['epoch']})"
        if fence and fence[0]["holder"] in live
        else "none live"
    )
    lines = [
        f"{'workers':<17}{len(live)} live: {', '.join(live) or 'none'}",
        f"{'poller':<17}{poller}",
    ]
    lags: dict[int, str] = {}
    if inbox_url is not None:
        # nats-py only when asked: a PostgreSQL state run by one worker needs none of it.
        from .jetstream import InboxUnavailable, JetStreamInbox

        inbox = JetStreamInbox(inbox_url, inbox_name or sync, len(rows))
        try:
            await inbox.connect()
            try:
                for row in rows:
                    lags[row.part] = str(await inbox.pending_after(row.part, row.offset))
            finally:
                await inbox.close()
        except InboxUnavailable as exc:
            lines.append(f"{'inbox':<17}{mask_url(inbox_url)}: {exc}")
    else:
        lines.append(f"{'inbox':<17}lag per partition needs INBOX_URL")
    lines.append(f"{'partitions':<17}{len(rows)}")
    lines.append(f"  {'part':>4}  {'owner':<32} {'epoch':>6} {'stored to':>10} {'lag':>8}")
    for row in rows:
        owner = row.owner or "-"
        if row.owner and not row.owner_alive:
            owner += " (gone)"
        lines.append(
            f"  {row.part:>4}  {owner:<32} {row.epoch:>6} {row.offset:>10} "
            f"{lags.get(row.part, '?'):>8}"
        )
    return lines
