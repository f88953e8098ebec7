"""``/openapi.json`` and ``/docs`` for a stand-in whose OpenAPI document is built by a function.

The page is plain, self-contained HTML (nothing fetched from a CDN): a row per operation, then
the schemas. Both are built on the first request, not at start-up, so the server answers sooner
(pydantic's JSON-schema machinery is slow to import).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

Document = dict[str, Any]


def _body_name(operation: dict[str, Any]) -> str:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return str(body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1])


def render_docs(document: Document, page_title: str, *, body_column: bool = False) -> str:
    """A page listing every operation of ``document``; ``body_column`` adds the request body's
    schema name as a column of its own."""
    rows: list[str] = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            answers = "<br>".join(
                f"<b>{html.escape(status)}</b> {html.escape(answer['description'])}"
                for status, answer in operation["responses"].items()
            )
            body = f"<td>{html.escape(_body_name(operation))}</td>" if body_column else ""
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(operation['summary'])}</td>{body}<td>{answers}</td></tr>"
            )
    schemas = json.dumps(document["components"]["schemas"], indent=2)
    body_head = "<th>body</th>" if body_column else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{page_title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}</style></head><body>"
        f"<h1>{html.escape(document['info']['title'])}</h1>"
        f"<p>{html.escape(document['info']['description'])}</p>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        f"<table><tr><th>method</th><th>path</th><th>what</th>{body_head}<th>answers</th></tr>"
        + "".join(rows)
        + f"</table><h2>Schemas</h2><pre>{html.escape(schemas)}</pre></body></html>"
    )


def add_docs_routes(
    app: web.Application, build_document: Callable[[], Document], render: Callable[[Document], str]
) -> None:
    """Serve ``build_document()`` at ``/openapi.json`` and ``render(document)`` at ``/docs``."""
    built: dict[str, bytes] = {}

    def content(kind: str) -> bytes:
        if not built:
            document = build_document()
            built["json"] = json.dumps(document).encode()
            built["html"] = render(document).encode()
        return built[kind]

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=content("json"), content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(body=content("html"), content_type="text/html", charset="utf-8")

    app.router.add_get("/openapi.json", openapi_json, allow_head=False)
    app.router.add_get("/docs", docs, allow_head=False)
