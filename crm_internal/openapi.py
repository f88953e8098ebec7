"""Our internal system's API as an OpenAPI 3.1 document (``/openapi.json``) and a page
(``/docs``). Schemas come from the pydantic models the handlers validate with."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm_internal.models import (
    OBJECTS,
    ROUTES,
    CompanyFields,
    CompanyList,
    CompanyRow,
    ContactFields,
    ContactList,
    ContactRow,
    Feed,
    SyncKeys,
)
from standin_kit import docs

REF = "#/components/schemas/{model}"
HEADERS = {
    "X-Sync-Origin": "stored as the version's origin (absent: user)",
    "If-Match": "the version the write expects; 412 if the row moved",
    "Idempotency-Key": "POST only: a repeat returns the first result",
}
ERRORS = {
    400: "malformed body, header or query: {error}",
    404: "no such record (or a tombstone): {error}",
    409: "restore of a live record: {error, current}",
    412: "version mismatch: {error: 'version mismatch', current}",
    422: "validation: {error, errors: [{field, message}]}",
}
MODELS = {"contact": ("ContactFields", "ContactRow", "ContactList"),
          "company": ("CompanyFields", "CompanyRow", "CompanyList")}  # fmt: skip


def _op(
    summary: str,
    ok: int,
    model: str | None,
    errors: tuple[int, ...],
    *,
    body: str | None = None,
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
    if body is not None:
        # Not an allOf of the two: both forbid unknown keys, so no body would match it.
        schema = {
            "$ref": REF.format(model=body),
            "description": "plus the sync keys links and born: see SyncKeys",
        }
        operation["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    return operation


def build_document() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    _, defs = models_json_schema(
        [(ContactFields, "validation"), (CompanyFields, "validation"), (SyncKeys, "validation"),
         (ContactRow, "serialization"), (CompanyRow, "serialization"),
         (ContactList, "serialization"), (CompanyList, "serialization"),
         (Feed, "serialization")],
        ref_template=REF,
    )  # fmt: skip
    write = ("X-Sync-Origin", "If-Match")
    paths: dict[str, Any] = {
        "/changes": {
            "get": _op("Rows and tombstones of both objects with version > after, in version "
                       "order", 200, "Feed", (400,), query=("after", "limit")),
        },
    }  # fmt: skip
    for object in OBJECTS:
        fields, row, listed = MODELS[object]
        base = f"/{ROUTES[object]}"
        paths[base + "/"] = {
            "get": _op(f"List live {ROUTES[object]} by id", 200, listed, (400,),
                       query=("after_id", "limit", "include_deleted")),
            "post": _op(f"Create a {object}", 201, row, (400, 422), body=fields,
                        headers=("X-Sync-Origin", "Idempotency-Key")),
        }  # fmt: skip
        paths[base + "/{id}"] = {
            "get": _op(f"Get a {object}", 200, row, (404,), query=("include_deleted",)),
            "patch": _op("Change the fields sent; links merge key by key", 200, row,
                         (400, 404, 412, 422), body=fields, headers=write),
            "delete": _op("Delete: leaves a tombstone with a new version", 200, row,
                          (404, 412), headers=write),
        }  # fmt: skip
        paths[base + "/{id}/restore"] = {
            "post": _op("Un-delete a tombstone (body: fields to set too)", 200, row,
                        (404, 409, 412, 422), body=fields, headers=write),
        }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Internal CRM system",
            "version": "1.0.0",
            "description": "Our internal contacts and companies. "
            "See docs/crm-internal-contract.md.",
        },
        "paths": paths,
        "components": {"schemas": dict(defs.get("$defs", {}))},
    }


def render_docs(document: dict[str, Any]) -> str:
    """The ``/docs`` page of ``document``."""
    return docs.render_docs(document, "Internal CRM system")


def add_routes(app: web.Application) -> None:
    """Serve the document and the page, built on first request (keeps start-up fast)."""
    docs.add_docs_routes(app, build_document, render_docs)
