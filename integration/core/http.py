"""HTTP to one configured service: pinned host, capped requests in flight, timeouts, and failures
translated into the engine's vocabulary (``TransientError`` / ``PermanentError``).

The session is injected so a process shares one connection pool and tests can pass their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from .availability import Availability
from .clock import Clock, SystemClock
from .errors import PermanentError, TransientError

_URL_CACHE = 4_096
"""Resolved paths kept per service (OurAPI's hold a chat id: one per chat)."""

RequestObserver = Callable[[str, str, str], None]
"""Called once per request with (service name, method, status or error kind): metrics, benches."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: URL

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is the server's fault and worth retrying."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            snippet = self.body[:60].decode("utf-8", "replace")
            raise TransientError(
                f"{self.url.path}: answer {self.status} is not JSON ({exc.__class__.__name__}); "
                f"starts with {snippet!r}",
                maybe_applied=True,
            ) from None

    def detail(self) -> str:
        """The error message of a ``{"detail": ...}`` body, or the start of the raw body."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return self.body[:200].decode("utf-8", "replace").strip()
        if isinstance(data, dict) and "detail" in data:
            detail = data["detail"]
            if isinstance(detail, list):
                return "; ".join(_format_validation_item(item) for item in detail)
            return str(detail)
        return str(data)[:200]


def _format_validation_item(item: Any) -> str:
    if isinstance(item, dict):
        loc = ".".join(str(part) for part in item.get("loc", []))
        return f"{loc}: {item.get('msg', '')}"
    return str(item)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class HttpService:
    """Requests to one service, never to another host than its configured base URL."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        max_in_flight: int = 8,
        timeout: float = 10.0,
        clock: Clock | None = None,
        observer: RequestObserver | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        given = URL(base_url.rstrip("/") + "/")
        if not given.is_absolute() or given.scheme not in ("http", "https"):
            raise ValueError(
                f"{name}: base URL must be an absolute http(s) URL, got {mask_url(base_url)!r}"
            )
        # Credentials in the URL become the session's auth for every request to this service
        # (the first page and every page after it), and are never part of a URL we show.
        self._headers = (
            {"Authorization": aiohttp.encode_basic_auth(given.user or "", given.password or "")}
            if given.user is not None or given.password is not None
            else None
        )
        if headers:
            # Sent with every request (a provider's bearer token), never shown or logged.
            self._headers = {**(self._headers or {}), **headers}
        self.base = given.with_user(None).with_password(None)
        self._origin = _origin(self.base)
        self._urls: dict[str, URL] = {}
        """Paths already resolved against the base (and found on its origin): joining a URL and
        comparing origins cost more than the rest of a request's own bookkeeping."""
        self._session = session
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock or SystemClock()
        self._observer = observer
        self.availability = Availability(label or name, self.display_url.rstrip("/"), self._clock)
        """Says once when the service stops answering and once when it answers again."""

    @property
    def display_url(self) -> str:
        """The base URL as it may be shown in a log: never with credentials."""
        return str(self.base)

    def url(self, path: str) -> URL:
        return self.base.join(URL(path.lstrip("/")))

    def same_origin(self, url: str) -> URL:
        """``url`` if it points at this service's own scheme, host and port, else refuse it.

        Used for links the service hands back (``nextPageUrl``): a compromised or misconfigured
        peer must not be able to send the worker, with its credentials, to another host. Origins
        are compared as the URL standard does: scheme and host in any letter case, and a default
        port written out (``https://host:443``) is the same as one left out.
        """
        try:
            target = URL(url)
            if not target.is_absolute():
                target = self.base.join(target)
            origin = _origin(target)
        except (ValueError, TypeError) as exc:
            raise PermanentError(
                f"{self.name}: refusing a malformed link {mask_url(str(url))[:120]!r} ({exc})"
            ) from None
        if origin != _origin(self.base):
            raise PermanentError(
                f"{self.name}: refusing to follow a link to {mask_url(str(target.origin()))} "
                f"(only {self.base.origin()} is configured)"
            )
        return target.with_user(None).with_password(None)

    async def request(
        self,
        method: str,
        path_or_url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One request. 2xx-4xx come back as a ``Response``; transport failures, 5xx and 429
        raise ``TransientError``. 4xx are left to the caller, whose contract says what they mean
        (OurAPI answers 404 to a duplicate chat).

        ``content``: a JSON body already encoded (``model_dump_json``), instead of ``json_body``
        (which aiohttp encodes with the standard library, after ``model_dump``: twice the work).

        ``headers`` are added to this request only (an API key, ``If-Match``); they win over the
        URL's credentials. Nothing here logs headers, and errors name only the method and path.
        """
        sent = {**(self._headers or {}), **headers} if headers else self._headers
        if content is not None:
            sent = {**(sent or {}), "Content-Type": "application/json"}
        url = self._resolve(path_or_url)
        # A read changes nothing, so its failure never leaves a write behind that could land.
        writes = method not in ("GET", "HEAD", "OPTIONS")
        async with self._slots:
            try:
                async with self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=content,
                    timeout=self._timeout,
                    headers=sent,
                ) as resp:
                    body = await resp.read()
                    status = resp.status
                    headers = resp.headers
            except aiohttp.ClientConnectorError as exc:
                self._observe(method, "connect-error")
                # "connection refused" rather than asyncio's "Connect call failed ('h', p)".
                errno = exc.os_error.errno
                why = os.strerror(errno).lower() if errno else exc.os_error.strerror or str(exc)
                self.availability.failed(f"cannot connect ({why})")
                # Never connected: the request cannot have been applied.
                raise TransientError(
                    f"{self._where(method, url)}: cannot connect ({why})", maybe_applied=False
                ) from None
            except TimeoutError:
                self._observe(method, "timeout")
                self.availability.failed(f"no answer within {self._timeout.total:g} s")
                raise TransientError(
                    f"{self._where(method, url)}: timed out", maybe_applied=writes
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                # ServerDisconnected, a reset pooled connection, a payload cut short: the request
                # may or may not have reached the server.
                self._observe(method, "connection-error")
                self.availability.failed(f"connection failed ({exc.__class__.__name__})")
                raise TransientError(
                    f"{self._where(method, url)}: connection failed ({exc.__class__.__name__})",
                    maybe_applied=writes,
                ) from None
        self._observe(method, str(status))
        if status >= 500:
            self.availability.failed(f"answers {status}")
        else:
            self.availability.answered()
        response = Response(status, headers, body, url)
        if status == 429:
            raise TransientError(
                f"{self._where(method, url)}: rate-limited (429)",
                retry_after=parse_retry_after(headers.get("Retry-After"), self._clock.now()),
                maybe_applied=False,
                status=status,
                body=body,
            )
        if status >= 500:
            raise TransientError(
                f"{self._where(method, url)}: server error {status} ({response.detail()[:80]})",
                retry_after=parse_retry_after(headers.get("Retry-After"), self._clock.now()),
                maybe_applied=writes,
                status=status,
            )
        return response

    def _resolve(self, path_or_url: str | URL) -> URL:
        """The URL to request, refused unless it is on the configured origin."""
        if isinstance(path_or_url, str):
            cached = self._urls.get(path_or_url)
            if cached is not None:
                return cached
        url = path_or_url if isinstance(path_or_url, URL) else self.url(path_or_url)
        if _origin(url) != self._origin:
            raise PermanentError(f"{self.name}: refusing a request to {mask_url(str(url))}")
        if isinstance(path_or_url, str):
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()  # one path per chat: bounded, and cheap to fill again
            self._urls[path_or_url] = url
        return url

    def _where(self, method: str, url: URL) -> str:
        """How an error names the request: never with its query or credentials."""
        return f"{self.name} {method} {url.path}"

    def _observe(self, method: str, outcome: str) -> None:
        if self._observer is not None:
            self._observer(self.name, method, outcome)


def _origin(url: URL) -> tuple[str, str, int | None]:
    """Scheme, host and port as the URL standard compares origins (``.port`` fills in the
    scheme's default port; hosts are compared in lower case)."""
    return ((url.scheme or "").lower(), (url.host or "").lower(), url.port)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for a log line or an error."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)


def unexpected(response: Response, doing: str) -> PermanentError:
    """A 4xx the caller did not expect, as one readable line."""
    return PermanentError(f"{doing}: {response.status} {response.detail()}")
