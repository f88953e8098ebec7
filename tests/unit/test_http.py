"""How HTTP failures are classified, against a real local server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from integration.core.errors import PermanentError, TransientError
from integration.core.http import HttpService
from integration.core.serving import serve_app


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    headers = {"Retry-After": "7"} if code in (429, 503) else {}
    return web.json_response({"detail": f"answer {code}"}, status=code, headers=headers)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.json_response({})


async def html(request: web.Request) -> web.Response:
    return web.Response(text="<html>oops</html>", content_type="text/html")


@pytest.fixture
async def service() -> AsyncIterator[HttpService]:
    app = web.Application()
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/html", html)
    async with serve_app(app) as served, aiohttp.ClientSession() as session:
        yield HttpService("svc", served.url, session, timeout=0.3)


async def test_a_4xx_comes_back_to_the_caller_who_knows_what_it_means(service: HttpService) -> None:
    response = await service.request("GET", "status/404")

    assert (response.status, response.detail()) == (404, "answer 404")


async def test_a_5xx_is_transient_and_may_have_been_applied(service: HttpService) -> None:
    with pytest.raises(TransientError) as caught:
        await service.request("GET", "status/500")
    assert caught.value.maybe_applied


async def test_a_429_is_transient_was_not_applied_and_carries_retry_after(
    service: HttpService,
) -> None:
    with pytest.raises(TransientError) as caught:
        await service.request("GET", "status/429")
    assert (caught.value.maybe_applied, caught.value.retry_after) == (False, 7.0)


async def test_a_timeout_is_transient_and_may_have_been_applied(service: HttpService) -> None:
    with pytest.raises(TransientError, match="timed out") as caught:
        await service.request("GET", "slow")
    assert caught.value.maybe_applied


async def test_a_refused_connection_is_transient_and_was_not_applied() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        service = HttpService("svc", f"http://127.0.0.1:{port}", session)
        with pytest.raises(TransientError, match="cannot connect") as caught:
            await service.request("GET", "x")
    assert not caught.value.maybe_applied


async def test_a_200_whose_body_is_not_json_is_transient(service: HttpService) -> None:
    response = await service.request("GET", "html")

    with pytest.raises(TransientError, match="not JSON"):
        response.json()


async def test_links_to_another_host_are_refused(service: HttpService) -> None:
    with pytest.raises(PermanentError, match="refusing"):
        service.same_origin("http://evil.example:8267/events?page=1")
    with pytest.raises(PermanentError, match="refusing"):
        await service.request("GET", service.same_origin(str(service.base)).with_port(1))


async def test_a_relative_link_resolves_against_the_configured_host(service: HttpService) -> None:
    assert service.same_origin("/events?page=2").origin() == service.base.origin()


async def test_requests_in_flight_never_exceed_the_cap() -> None:
    active = peak = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/x", handler)
    async with serve_app(app) as served, aiohttp.ClientSession() as session:
        service = HttpService("svc", served.url, session, max_in_flight=1)
        await asyncio.gather(*(service.request("GET", "x") for _ in range(20)))

    assert peak == 1
