"""Domain errors raised by the stores, and how each one is answered (contract status and body)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError


class StoreError(Exception):
    """A request the store refused; ``response()`` is the contract's answer to it."""

    status = 500
    detail = "Internal Server Error"

    def response(self) -> web.Response:
        return json_detail(self.status, self.detail)


class ChatNotFound(StoreError):
    status = 404
    detail = "Chat not found"


class AgentNotFound(StoreError):
    status = 404
    detail = "Agent not found"


class UnknownAgent(StoreError):
    """An ``agent_id`` in a body that names no agent."""

    status = 400
    detail = "That agent does not exist."


class DuplicateExternalId(StoreError):
    # The real service answers 404 (sic) here; the stand-in must do the same.
    status = 404
    detail = "A chat with that external ID already exists."


class DuplicateAgent(StoreError):
    """A name or e-mail already taken: the real service lets the DB error escape as a bare 500."""

    def response(self) -> web.Response:
        return plain_500()


def json_detail(status: int, detail: Any) -> web.Response:
    """A ``{"detail": ...}`` answer, the error shape of every contract error but the bare 500."""
    return web.json_response({"detail": detail}, status=status)


def plain_500() -> web.Response:
    """The bare plain-text 500 a FastAPI/Starlette server gives on an unhandled error."""
    return web.Response(status=500, text="Internal Server Error", content_type="text/plain")


def validation_422(error: ValidationError, where: str, *name: str) -> web.Response:
    """A 422 in FastAPI's shape: each pydantic error, its ``loc`` prefixed with ``where``.

    ``where`` is ``"body"``, ``"path"`` or ``"query"``, as FastAPI reports it; ``name`` names a
    single validated parameter (a TypeAdapter's errors have an empty ``loc``). ``error.json()`` is
    used rather than ``errors()`` because it turns ``ctx`` values (exceptions) into strings.
    """
    items = json.loads(error.json(include_url=False))
    for item in items:
        item["loc"] = [where, *name, *item["loc"]]
    return json_detail(422, items)
