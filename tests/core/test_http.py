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


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"type": request.content_type, "body": await request.json()})


async def html(request: web.Request) -> web.Response:
    return web.Response(text="<html>oops</html>", content_type="text/html")


@pytest.fixture
async def service() -> AsyncIterator[HttpService]:
    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("*", "/slow", slow)
    app.router.add_get("/html", html)
    app.router.add_post("/echo", echo)
    async with serve_app(app) as served, aiohttp.ClientSession() as session:
        yield HttpService("svc", served.url, session, timeout=0.3)


async def test_a_4xx_comes_back_to_the_caller_who_knows_what_it_means(service: HttpService) -> None:
    response = await service.request("GET", "status/404")

    assert (response.status, response.detail()) == (404, "answer 404")


async def test_a_5xx_to_a_write_is_transient_and_may_have_been_applied(
    service: HttpService,
) -> None:
    with pytest.raises(TransientError) as caught:
        await service.request("POST", "status/500")
    assert caught.value.maybe_applied and caught.value.status == 500


async def test_a_failed_read_is_transient_and_never_leaves_a_write_behind(
    service: HttpService,
) -> None:
    with pytest.raises(TransientError) as caught:
        await service.request("GET", "status/500")
    assert not caught.value.maybe_applied


async def test_a_429_is_transient_was_not_applied_and_carries_retry_after(
    service: HttpService,
) -> None:
    with pytest.raises(TransientError) as caught:
        await service.request("GET", "status/429")
    assert (caught.value.maybe_applied, caught.value.retry_after) == (False, 7.0)


async def test_a_timeout_is_transient_may_have_been_applied_and_got_no_answer(
    service: HttpService,
) -> None:
    with pytest.raises(TransientError, match="timed out") as caught:
        await service.request("POST", "slow")
    assert caught.value.maybe_applied and caught.value.status is None


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


async def test_a_path_naming_another_host_is_refused_every_time(service: HttpService) -> None:
    # Resolved paths are kept for speed: a refused one must never be kept as resolved.
    for _ in range(2):
        with pytest.raises(PermanentError, match="refusing"):
            await service.request("GET", "http://evil.example/status/200")


async def test_an_encoded_json_body_is_sent_as_json(service: HttpService) -> None:
    response = await service.request("POST", "echo", content=rb'{"text": "h\u00e9"}')

    assert response.json() == {"type": "application/json", "body": {"text": "h\u00e9"}}


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


def test_a_link_with_the_default_port_written_out_is_the_same_origin() -> None:
    async def check() -> None:
        async with aiohttp.ClientSession() as session:
            service = HttpService("svc", "https://bigchat.example", session)
            assert service.same_origin("https://bigchat.example:443/events?page=1").port == 443
            assert service.same_origin("https://BigChat.Example/events?page=1").host

    asyncio.run(check())


def test_a_link_with_another_port_or_scheme_is_refused() -> None:
    async def check() -> None:
        async with aiohttp.ClientSession() as session:
            service = HttpService("svc", "https://bigchat.example", session)
            for link in ("http://bigchat.example/events", "https://bigchat.example:8443/events"):
                with pytest.raises(PermanentError):
                    service.same_origin(link)

    asyncio.run(check())


def test_a_malformed_link_is_refused_in_one_line_not_raised_as_a_value_error() -> None:
    async def check() -> None:
        async with aiohttp.ClientSession() as session:
            service = HttpService("svc", "https://bigchat.example", session)
            with pytest.raises(PermanentError, match="malformed"):
                service.same_origin("http://[::1")

    asyncio.run(check())


def test_credentials_in_the_base_url_are_never_part_of_what_is_shown() -> None:
    async def check() -> None:
        async with aiohttp.ClientSession() as session:
            service = HttpService("svc", "https://reader:s3cret@bigchat.example/", session)
            assert "s3cret" not in str(service.base)
            assert "s3cret" not in service.display_url

    asyncio.run(check())
