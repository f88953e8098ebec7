"""The answers Intempus gives when it refuses a request (contract section 9).

Handlers raise ``ApiError``; the middleware turns it into its response. Texts that the contract
quotes are tastypie's, word for word; the form-validation shape (``{"case": {field: [text]}}``)
is used for the rules whose real text nobody has captured.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON = "application/json"
WWW_AUTHENTICATE = 'CustomBasic realm="django-tastypie"'
SERVER_ERROR_TEXT = "Sorry, this request could not be processed. Please try again later."
DELETE_BLOCKED = "Kan ikke slette Sag da Registreringer er relateret og bør slettes først"
DELETE_BLOCKED_CHILDREN = "Kan ikke slette Sag da Sager er relateret og bør slettes først"


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type=JSON, headers=headers
    )


def empty(status: int, headers: dict[str, str] | None = None) -> web.Response:
    """An answer with no body at all (401, 404, 405, 204)."""
    return web.Response(status=status, headers=headers)


class ApiError(Exception):
    """A refusal; ``response()`` is the contract's answer to it."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = headers

    def response(self) -> web.Response:
        if self.body is None:
            return empty(self.status, self.headers)
        return json_response(self.body, self.status, self.headers)


def bad_request(text: str) -> ApiError:
    """400 ``{"error": text}``: tastypie's BadRequest and its field errors."""
    return ApiError(400, {"error": text})


def form_error(field: str, text: str) -> ApiError:
    """400 in the form-validation shape, keyed by resource then field."""
    return ApiError(400, {"case": {field: [text]}})


def not_found() -> ApiError:
    """404 with an empty body: a missing id."""
    return ApiError(404)


def unauthorized() -> ApiError:
    return ApiError(401, headers={"WWW-Authenticate": WWW_AUTHENTICATE})


def server_error(html_page: bool) -> web.Response:
    """tastypie's 500 (``error_message``), or the HTML page a proxy or Django debug gives."""
    if html_page:
        page = (
            "<!DOCTYPE html><html><head><title>Server Error (500)</title></head><body>"
            "<h1>Server Error (500)</h1><p>Incident ID: standin-500</p></body></html>"
        )
        return web.Response(status=500, text=page, content_type="text/html")
    return json_response({"error_message": SERVER_ERROR_TEXT}, 500)
