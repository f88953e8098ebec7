"""BigChat's API: pages of ``/events``, conversations, advisors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from yarl import URL

from ...core.clock import iso
from ...core.errors import PermanentError, TransientError
from ...core.http import HttpService, Response, unexpected
from ...core.retry import RetryPolicy, retrying
from .models import Advisor, Conversation, EventsPage

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("integration.bigchat")

MAX_PAGES = 10_000
"""A window with more pages than this is a looping server, not data."""


def _parse(model: type[M], response: Response, what: str) -> M:
    try:
        # From the bytes: one pass in pydantic's own parser instead of json.loads, then validation.
        return model.model_validate_json(response.body)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            response.json()  # raises the error an answer that is not JSON has always raised
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
        self.unanswered = 0
        """Page requests that failed without an answer (timeouts, dropped connections): BigChat
        may have served those events and will not serve them again (see ``take_unanswered``)."""

    async def _page(self, url: URL) -> tuple[bytes, EventsPage]:
        try:
            response = await self.http.request("GET", url)
        except TransientError as exc:
            if exc.status is None:
                self.unanswered += 1
            raise
        if response.status != 200:
            raise unexpected(response, "BigChat GET /events")
        return response.body, _parse(EventsPage, response, "GET /events")

    def take_unanswered(self) -> int:
        """How many page requests went unanswered since the last call (and reset the count)."""
        count, self.unanswered = self.unanswered, 0
        return count

    async def event_pages(self, start: float, end: float) -> AsyncIterator[tuple[bytes, bool]]:
        """The pages of [start, end) as received (the body), with whether each is the last.

        ``nextPageUrl`` is followed only on the configured origin, and never back to a page
        already read. A link that cannot be followed (another host, malformed, a loop) is not
        the end of the window: the contract says the next page is the same request with
        ``page`` plus one, so that is asked for instead, from the configured origin.
        """
        first = self.http.url("events").with_query(start_at=iso(start), end_at=iso(end), page="0")
        url = first
        seen: set[str] = set()
        for number in range(MAX_PAGES):
            seen.add(str(url))
            body, page = await self._get_page(url)
            # The page is handed over (and stored) before its link is judged: BigChat may never
            # serve these events again, so a bad link must not cost the page that carried it.
            yield body, page.nextPageUrl is None
            if page.nextPageUrl is None:
                return
            url = self._next(first, number + 1, page.nextPageUrl, seen)
        raise PermanentError(f"BigChat: more than {MAX_PAGES} pages in one window")

    def _next(self, first: URL, number: int, link: str, seen: set[str]) -> URL:
        own = first.update_query(page=str(number))
        try:
            nxt = self.http.same_origin(link)
            if str(nxt) in seen:
                raise PermanentError(
                    f"BigChat: nextPageUrl loops back to a page already read ({nxt})"
                )
        except PermanentError as exc:
            log.warning("%s; asking for page %d of the window instead", exc, number)
            return own
        return nxt

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
