"""The served contract as an OpenAPI 3.1 document (``/openapi.json``) and a page (``/docs``).

The case schema comes from ``models.CaseOut`` itself, so the document cannot drift from what the
conformance tests hold the answers to. The page is self-contained HTML: nothing is fetched.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from intempus.models import CaseList, CaseOut, CaseWrite
from standin_kit import docs

REF = "#/components/schemas/{model}"
AUTH = "Authorization: ApiKey <username>:<api_key> (Basic also accepted by default)"

_ERROR = {"type": "object", "properties": {"error": {}}, "description": '{"error": "..."}'}


def _op(summary: str, answers: dict[int, str], *, body: bool = False, ok: str | None = None,
        query: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    responses: dict[str, Any] = {}
    for status, text in answers.items():
        answer: dict[str, Any] = {"description": text}
        if ok is not None and 200 <= status < 300 and status != 204:
            answer["content"] = {"application/json": {"schema": {"$ref": REF.format(model=ok)}}}
        elif status in (400, 409, 429):
            answer["content"] = {"application/json": {"schema": _ERROR}}
        responses[str(status)] = answer
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        schema = {"$ref": REF.format(model="CaseWrite")}
        operation["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    if query:
        operation["parameters"] = [
            {"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
            for q in query
        ]
    return operation


COMMON = {401: "bad or missing credentials: empty body, WWW-Authenticate", 429: "rate limit"}
LIST_QUERY = (
    "limit", "offset", "pagination_type", "after", "order_by", "logical_timestamp__gt",
    "logical_timestamp__gte", "logical_timestamp__lt", "logical_timestamp__lte", "id", "id__in",
    "active", "number", "number__in", "customer", "customer__in", "name__icontains",
)  # fmt: skip


def build_document() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    _, defs = models_json_schema(
        [(CaseOut, "serialization"), (CaseList, "serialization"), (CaseWrite, "validation")],
        ref_template=REF,
    )
    detail = "/web/v1/case/{id}/"
    paths: dict[str, Any] = {
        "/web/v1/case/": {
            "get": _op(
                "List cases; Logical-Timestamp header = highest committed LT",
                {200: "{meta, objects}", 400: "bad filter, ordering, limit or offset", **COMMON},
                ok="CaseList",
                query=LIST_QUERY,
            ),
            "post": _op(
                "Create a case (answer shows logical_timestamp 42); repeat creation_id: same case",
                {
                    201: "the case, Location header",
                    400: "validation",
                    404: "relation URI of the wrong type",
                    **COMMON,
                },
                body=True,
                ok="CaseOut",
            ),
        },
        detail: {
            "get": _op("Get a case", {200: "the case", 404: "empty body", **COMMON}, ok="CaseOut"),
            "put": _op(
                "Update the keys sent (partial in effect); answer shows the old LT",
                {200: "the case", 400: "validation", 404: "empty body", **COMMON},
                body=True,
                ok="CaseOut",
            ),
            "patch": _op(
                "Update the keys sent; answer shows the old LT",
                {202: "the case", 400: "validation", 404: "empty body", **COMMON},
                body=True,
                ok="CaseOut",
            ),
            "delete": _op(
                "Hard delete (never reported in any feed)",
                {204: "empty", 404: "empty body", 409: "work reports block it", **COMMON},
            ),
        },
    }
    for name in ("customer", "case_group", "case_state", "department", "employee", "company"):
        paths[f"/web/v1/{name}/"] = {
            "get": _op(f"List {name} rows (read-only)", {200: "{meta, objects}", **COMMON})
        }
        paths[f"/web/v1/{name}/{{id}}/"] = {
            "get": _op(f"Get a {name} row", {200: "the row", 404: "empty body", **COMMON})
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Intempus web/v1 stand-in",
            "version": "1.0.0",
            "description": f"{AUTH}. See docs/intempus-contract.md for the quirks.",
        },
        "paths": paths,
        "components": {"schemas": dict(defs.get("$defs", {}))},
    }


def render_docs(document: dict[str, Any]) -> str:
    """The ``/docs`` page of ``document``."""
    return docs.render_docs(document, "Intempus stand-in")


def add_routes(app: web.Application) -> None:
    """Serve the document and the page, built on first request (keeps start-up fast)."""
    docs.add_docs_routes(app, build_document, render_docs)
