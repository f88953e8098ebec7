"""HTTP to one configured service: pinned host, capped requests in flight, timeouts, and failures
translated into the engine's vocabulary (``TransientError`` / ``PermanentError``).

The session is injected so a process shares one connection pool and tests can pass their own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from .clock import Clock, SystemClock
from .errors import PermanentError, TransientError

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
    ) -> None:
        self.name = name
        self.base = URL(base_url.rstrip("/") + "/")
        if not self.base.is_absolute() or self.base.scheme not in ("http", "https"):
            raise ValueError(f"{name}: base URL must be an absolute http(s) URL, got {base_url!r}")
        self._session = session
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock or SystemClock()
        self._observer = observer

    def url(self, path: str) -> URL:
        return self.base.join(URL(path.lstrip("/")))

    def same_origin(self, url: str) -> URL:
        """``url`` if it points at this service's own scheme, host and port, else refuse it.

        Used for links the service hands back (``nextPageUrl``): a compromised or misconfigured
        peer must not be able to send the worker, with its credentials, to another host.
        """
        target = URL(url)
        if not target.is_absolute():
            target = self.base.join(target)
        if target.origin() != self.base.origin():
            raise PermanentError(
                f"{self.name}: refusing to follow a link to {target.origin()} "
                f"(only {self.base.origin()} is configured)"
            )
        return target

    async def request(
        self,
        method: str,
        path_or_url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Response:
        """One request. 2xx-4xx come back as a ``Response``; transport failures, 5xx and 429
        raise ``TransientError``. 4xx are left to the caller, whose contract says what they mean
        (OurAPI answers 404 to a duplicate chat)."""
        url = path_or_url if isinstance(path_or_url, URL) else self.url(path_or_url)
        if url.origin() != self.base.origin():
            raise PermanentError(f"{self.name}: refusing a request to {url.origin()}")
        where = f"{self.name} {method} {url.path}"
        async with self._slots:
            try:
                async with self._session.request(
                    method, url, params=params, json=json_body, timeout=self._timeout
                ) as resp:
                    body = await resp.read()
                    status = resp.status
                    headers = resp.headers
            except aiohttp.ClientConnectorError as exc:
                self._observe(method, "connect-error")
                # Never connected: the request cannot have been applied.
                raise TransientError(
                    f"{where}: cannot connect ({exc.os_error.strerror or exc})",
                    maybe_applied=False,
                ) from None
            except TimeoutError:
                self._observe(method, "timeout")
                raise TransientError(f"{where}: timed out", maybe_applied=True) from None
            except (aiohttp.ClientError, OSError) as exc:
                # ServerDisconnected, a reset pooled connection, a payload cut short: the request
                # may or may not have reached the server.
                self._observe(method, "connection-error")
                raise TransientError(
                    f"{where}: connection failed ({exc.__class__.__name__})", maybe_applied=True
                ) from None
        self._observe(method, str(status))
        response = Response(status, headers, body, url)
        if status == 429:
            raise TransientError(
                f"{where}: rate-limited (429)",
                retry_after=parse_retry_after(headers.get("Retry-After"), self._clock.now()),
                maybe_applied=False,
            )
        if status >= 500:
            raise TransientError(
                f"{where}: server error {status} ({response.detail()[:80]})",
                retry_after=parse_retry_after(headers.get("Retry-After"), self._clock.now()),
                maybe_applied=True,
            )
        return response

    def _observe(self, method: str, outcome: str) -> None:
        if self._observer is not None:
            self._observer(self.name, method, outcome)


def unexpected(response: Response, doing: str) -> PermanentError:
    """A 4xx the caller did not expect, as one readable line."""
    return PermanentError(f"{doing}: {response.status} {response.detail()}")
