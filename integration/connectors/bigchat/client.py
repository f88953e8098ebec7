"""BigChat's API: pages of ``/events``, conversations, advisors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from yarl import URL

from ...core.clock import iso
from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response, unexpected
from ...core.retry import RetryPolicy, retrying
from .models import Advisor, Conversation, EventsPage

M = TypeVar("M", bound=BaseModel)

MAX_PAGES = 10_000
"""A window with more pages than this is a looping server, not data."""


def _parse(model: type[M], response: Response, what: str) -> M:
    try:
        return model.model_validate(response.json())
    except ValidationError as exc:
        # The service answered 200 with the wrong shape: its fault, and worth asking again.
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise TransientError(
            f"BigChat {what}: answer has the wrong shape ({where}: {first['msg']})"
        ) from None


class BigChatClient:
    def __init__(self, http: HttpService, *, page_retry: RetryPolicy | None = None) -> None:
        self.http = http
        # A page is retried where it failed, a few times, rather than the window from page 0:
        # pages already stored need not be asked for again.
        policy = page_retry or RetryPolicy(base=0.2, max_delay=5.0, max_tries=6)
        self._get_page = retrying(policy)(self._page)

    async def _page(self, url: URL) -> EventsPage:
        response = await self.http.request("GET", url)
        if response.status != 200:
            raise unexpected(response, "BigChat GET /events")
        return _parse(EventsPage, response, "GET /events")

    async def event_pages(self, start: float, end: float) -> AsyncIterator[tuple[list[Any], bool]]:
        """Raw events of [start, end), page by page, with whether the page is the last.

        ``nextPageUrl`` is followed only on the configured host, and a link back to a page
        already read is refused (a server stuck in a loop would otherwise never end the window).
        """
        url = self.http.url("events").with_query(start_at=iso(start), end_at=iso(end), page="0")
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            seen.add(str(url))
            page = await self._get_page(url)
            # The page is handed over (and stored) before its link is judged: BigChat may never
            # serve these events again, so a bad link must not cost the page that carried it.
            yield page.events, page.nextPageUrl is None
            if page.nextPageUrl is None:
                return
            nxt = self.http.same_origin(page.nextPageUrl)
            if str(nxt) in seen:
                raise PermanentError(
                    f"BigChat: nextPageUrl loops back to a page already read ({nxt})"
                )
            url = nxt
        raise PermanentError(f"BigChat: more than {MAX_PAGES} pages in one window")

    async def conversation(self, conversation_id: int) -> Conversation | None:
        return await self._one(Conversation, f"conversations/{conversation_id}")

    async def advisor(self, advisor_id: int) -> Advisor | None:
        return await self._one(Advisor, f"advisors/{advisor_id}")

    async def _one(self, model: type[M], path: str) -> M | None:
        """One resource, or None when BigChat answers 404 for it."""
        response = await self.http.request("GET", path)
        if response.status == 404:
            return None
        if response.status != 200:
            raise unexpected(response, f"BigChat GET /{path}")
        return _parse(model, response, f"GET /{path}")
