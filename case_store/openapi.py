"""The case store's API as an OpenAPI 3.1 document (``/openapi.json``) and a page (``/docs``).
Schemas come from the pydantic models the handlers validate with."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from case_store.models import CaseFields, CaseList, CaseRow, Feed
from standin_kit import docs

REF = "#/components/schemas/{model}"
HEADERS = {
    "X-Sync-Origin": "stored as the version's origin (absent: user)",
    "If-Match": "the version the write expects; 412 if the row moved",
    "Idempotency-Key": "POST only: a repeat returns the first result",
}
ERRORS = {
    400: "malformed body, header or query: {error}",
    404: "no such case (or a tombstone): {error}",
    409: "restore of a live case: {error, current}",
    410: "feed cursor older than the tombstone horizon: {error, horizon}",
    412: "version mismatch: {error: 'version mismatch', current}",
    422: "validation: {error, errors: [{field, message}]}",
}


def _op(
    summary: str,
    ok: int,
    model: str | None,
    errors: tuple[int, ...],
    *,
    body: bool = False,
    headers: tuple[str, ...] = (),
    query: tuple[str, ...] = (),
) -> Any:
    answer: dict[str, Any] = {"description": summary}
    if model is not None:
        answer["content"] = {"application/json": {"schema": {"$ref": REF.format(model=model)}}}
    responses = {str(ok): answer} | {str(e): {"description": ERRORS[e]} for e in errors}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    parameters = [
        {"name": h, "in": "header", "required": False, "description": HEADERS[h],
         "schema": {"type": "string"}}
        for h in headers
    ] + [
        {"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query
    ]  # fmt: skip
    if parameters:
        operation["parameters"] = parameters
    if body:
        schema = {"$ref": REF.format(model="CaseFields")}
        operation["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    return operation


def build_document() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    _, defs = models_json_schema(
        [(CaseFields, "validation"), (CaseRow, "serialization"), (CaseList, "serialization"),
         (Feed, "serialization")],
        ref_template=REF,
    )  # fmt: skip
    write = ("X-Sync-Origin", "If-Match")
    paths = {
        "/cases/": {
            "get": _op("List live cases by id", 200, "CaseList", (400,),
                       query=("after_id", "limit", "intempus_id", "include_deleted")),
            "post": _op("Create a case", 201, "CaseRow", (400, 422), body=True,
                        headers=("X-Sync-Origin", "Idempotency-Key")),
        },
        "/cases/changes": {
            "get": _op("Rows and tombstones with version > after, in version order", 200,
                       "Feed", (400, 410), query=("after", "limit")),
        },
        "/cases/{case_id}": {
            "get": _op("Get a case", 200, "CaseRow", (404,), query=("include_deleted",)),
            "patch": _op("Change the fields sent", 200, "CaseRow", (400, 404, 412, 422),
                         body=True, headers=write),
            "delete": _op("Delete: leaves a tombstone with a new version", 200, "CaseRow",
                          (404, 412), headers=write),
        },
        "/cases/{case_id}/restore": {
            "post": _op("Un-delete a tombstone (body: fields to set too)", 200, "CaseRow",
                        (404, 409, 412, 422), body=True, headers=write),
        },
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Case store",
            "version": "1.0.0",
            "description": "Our local case store. See docs/case-store-contract.md.",
        },
        "paths": paths,
        "components": {"schemas": dict(defs.get("$defs", {}))},
    }


def render_docs(document: dict[str, Any]) -> str:
    """The ``/docs`` page of ``document``."""
    return docs.render_docs(document, "Case store")


def add_routes(app: web.Application) -> None:
    """Serve the document and the page, built on first request (keeps start-up fast)."""
    docs.add_docs_routes(app, build_document, render_docs)
