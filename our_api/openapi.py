"""The contract as an OpenAPI 3.1 document (``GET /openapi.json``) and a readable page (``/docs``).

Schemas come from the pydantic models themselves, so the document cannot drift from what the
handlers validate. The page is self-contained HTML: no CDN, nothing fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel

from our_api.models import Agent, AgentCreate, Chat, ChatCreate, ChatUpdate, Message, MessageCreate
from standin_kit import docs

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaMode

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """One call of the contract, as documented."""

    method: str
    path: str
    summary: str
    status: int
    answer: type[BaseModel] | None = None
    answer_is_list: bool = False
    answer_note: str = ""
    body: type[BaseModel] | None = None
    query: tuple[str, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)
    headers: tuple[str, ...] = ()

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/chats",
        "Create a chat",
        201,
        Chat,
        body=ChatCreate,
        headers=("Location",),
        errors={
            400: "That agent does not exist.",
            404: "A chat with that external ID already exists.",
        },
    ),
    Operation(
        "GET",
        "/chats",
        "List chats, all of them without the filter",
        200,
        Chat,
        answer_is_list=True,
        query=("external_id",),
    ),
    Operation("GET", "/chats/{chat_id}", "Get a chat", 200, Chat, errors={404: "Chat not found"}),
    Operation(
        "PATCH",
        "/chats/{chat_id}",
        "Change the fields sent (empty answer)",
        204,
        body=ChatUpdate,
        errors={400: "That agent does not exist.", 404: "Chat not found"},
    ),
    Operation(
        "POST",
        "/chats/{chat_id}/messages",
        "Add a message (stored again if posted again)",
        200,
        answer_note="an empty JSON object {}",
        body=MessageCreate,
        errors={400: "That agent does not exist.", 404: "Chat not found"},
    ),
    Operation(
        "GET",
        "/chats/{chat_id}/messages",
        "List a chat's messages",
        200,
        Message,
        answer_is_list=True,
        errors={404: "Chat not found"},
    ),
    Operation(
        "POST",
        "/agents",
        "Create an agent",
        201,
        Agent,
        body=AgentCreate,
        headers=("Location",),
        errors={500: "plain text: the name or the e-mail already exists"},
    ),
    Operation(
        "GET", "/agents/{agent_id}", "Get an agent", 200, Agent, errors={404: "Agent not found"}
    ),
    Operation(
        "GET",
        "/agents",
        "List agents; both filters optional and combined",
        200,
        Agent,
        answer_is_list=True,
        query=("name", "email"),
    ),
)

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_VALIDATION_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["loc", "msg", "type"],
            },
        }
    },
}


def _schemas() -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    # Imported here: pydantic's JSON-schema machinery is slow to import and only needed when the
    # document is first asked for, so the server starts answering sooner.
    from pydantic.json_schema import models_json_schema

    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in OPERATIONS:
        if op.body is not None:
            modes.append((op.body, "validation"))
        if op.answer is not None and (op.answer, "serialization") not in modes:
            modes.append((op.answer, "serialization"))
    refs, defs = models_json_schema(modes, ref_template=REF)
    components: dict[str, Any] = dict(defs.get("$defs", {}))
    components["HTTPError"] = _ERROR_SCHEMA
    components["HTTPValidationError"] = _VALIDATION_SCHEMA
    return dict(refs), components


def _operation_id(op: Operation) -> str:
    words = op.path.strip("/").replace("{", "").replace("}", "").split("/")
    return "_".join([op.method.lower(), *words])


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the contract's paths."""
    refs, components = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            }
            for name in op.path_params
        ] + [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in op.query
        ]
        ok: dict[str, Any] = {"description": op.answer_note or op.summary}
        if op.answer is not None:
            schema = refs[(op.answer, "serialization")]
            ok["content"] = _json_content(
                {"type": "array", "items": schema} if op.answer_is_list else schema
            )
        elif op.status != 204:
            ok["content"] = _json_content({"type": "object", "maxProperties": 0})
        if op.headers:
            ok["headers"] = {name: {"schema": {"type": "string"}} for name in op.headers}
        responses: dict[str, Any] = {str(op.status): ok}
        for status, detail in op.errors.items():
            if status == 500:
                responses["500"] = {
                    "description": detail,
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            else:
                responses[str(status)] = {
                    "description": detail,
                    "content": _json_content({"$ref": REF.format(model="HTTPError")}),
                }
        if op.body is not None or op.path_params:
            responses["422"] = {
                "description": "Validation Error",
                "content": _json_content({"$ref": REF.format(model="HTTPValidationError")}),
            }
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": _operation_id(op),
            "responses": responses,
        }
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": _json_content(refs[(op.body, "validation")]),
            }
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OurAPI",
            "version": "1.0.0",
            "description": "Datetimes are ISO 8601; an offset sent in is dropped, not converted, "
            "and datetimes come back without one.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }


def render_docs(document: dict[str, Any]) -> str:
    """The ``/docs`` page of ``document``."""
    return docs.render_docs(document, "OurAPI", body_column=True)


def add_routes(app: web.Application) -> None:
    """Serve the document and the page, built on first request (keeps start-up fast)."""
    docs.add_docs_routes(app, build_document, render_docs)
