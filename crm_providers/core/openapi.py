"""Each provider's surface as an OpenAPI 3.1 document (``/openapi.json``) and a page (``/docs``).

Request bodies come from the pydantic models the handlers validate with, so the document cannot
drift from what is accepted. The page is self-contained HTML: nothing is fetched from a CDN.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """One documented call."""

    method: str
    path: str
    summary: str
    status: int = 200
    body: type[BaseModel] | None = None
    query: tuple[str, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


def build_document(title: str, operations: list[Operation]) -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    bodies = sorted({op.body for op in operations if op.body is not None}, key=lambda m: m.__name__)
    refs, defs = models_json_schema([(m, "validation") for m in bodies], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        responses: dict[str, Any] = {str(op.status): {"description": op.summary}}
        for status, text in op.errors.items():
            responses[str(status)] = {"description": text}
        operation: dict[str, Any] = {"summary": op.summary, "responses": responses}
        parameters = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in op.path_params
        ] + [
            {"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
            for q in op.query
        ]
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": dict(defs.get("$defs", {}))},
    }


def render_page(title: str, operations: list[Operation]) -> str:
    rows = "\n".join(
        f"<tr><td><code>{op.method}</code></td><td><code>{html.escape(op.path)}</code></td>"
        f"<td>{html.escape(op.summary)}</td>"
        f"<td>{html.escape(', '.join(op.query))}</td>"
        f"<td>{op.status}; "
        + html.escape("; ".join(f"{s} {t}" for s, t in op.errors.items()))
        + "</td></tr>"
        for op in operations
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border-bottom:1px solid #ddd;"
        "padding:4px 8px;text-align:left;vertical-align:top}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>The machine-readable document is "
        "<a href='/openapi.json'>/openapi.json</a>. Stand-in controls live under /_standin/.</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>query</th><th>answers</th></tr>"
        f"{rows}</table></body></html>"
    )


def add_routes(app: web.Application, title: str, operations: list[Operation]) -> None:
    cache: dict[str, Any] = {}

    async def document(_: web.Request) -> web.Response:
        if "doc" not in cache:
            cache["doc"] = build_document(title, operations)
        return web.json_response(cache["doc"])

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=render_page(title, operations), content_type="text/html")

    app.router.add_get("/openapi.json", document, allow_head=False)
    app.router.add_get("/docs", page, allow_head=False)
