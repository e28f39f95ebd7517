"""OpenAPI for the error answers: the bodies `install_exception_handlers` really sends."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from fastkit.routing import api_routes

__all__ = ["document_error_responses"]

_VALIDATION_ITEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "required": ["loc", "msg", "type"],
    "properties": {
        "loc": {
            "title": "Location",
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
    },
}

_ERRORS_ARRAY: dict[str, Any] = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/ValidationError"},
}

_VALIDATION_BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    "envelope": {
        "title": "HTTPValidationError",
        "type": "object",
        "required": ["code", "message", "data"],
        "properties": {
            "code": {"title": "Code", "type": "integer"},
            "message": {"title": "Message", "type": "string"},
            "data": {"title": "Data", **_ERRORS_ARRAY},
        },
    },
    "problem": {
        "title": "HTTPValidationError",
        "type": "object",
        "required": ["type", "title", "status", "detail", "errors"],
        "properties": {
            "type": {"title": "Type", "type": "string"},
            "title": {"title": "Title", "type": "string"},
            "status": {"title": "Status", "type": "integer"},
            "detail": {"title": "Detail", "type": "string"},
            "instance": {"title": "Instance", "type": "string"},
            "errors": {"title": "Errors", **_ERRORS_ARRAY},
        },
    },
}


_ERROR_BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    "envelope": {
        "title": "ErrorResponse",
        "type": "object",
        "required": ["code", "message", "data"],
        "properties": {
            "code": {"title": "Code", "type": "integer"},
            "message": {"title": "Message", "type": "string"},
            "data": {"title": "Data"},
            "request_id": {"title": "Request Id", "type": "string"},
        },
    },
    "problem": {
        "title": "ErrorResponse",
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"title": "Type", "type": "string"},
            "title": {"title": "Title", "type": "string"},
            "status": {"title": "Status", "type": "integer"},
            "detail": {"title": "Detail", "type": "string"},
            "instance": {"title": "Instance", "type": "string"},
            "request_id": {"title": "Request Id", "type": "string"},
        },
    },
}
_MEDIA_TYPES = {"envelope": "application/json", "problem": "application/problem+json"}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _error_response(style: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            _MEDIA_TYPES[style]: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
        },
    }


def _declared_responses(app: FastAPI) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """The answers each route's dependencies declare, by (path, method).

    A dependency (a callable, or an object with ``__call__``) may say which error answers
    it can cause with an ``openapi_responses`` mapping of status to an OpenAPI response
    (``RateLimit`` declares its 429); they are documented on every route that uses it.
    """
    declared: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for route in api_routes(app):
        if not route.include_in_schema or route.dependant is None:
            continue
        found: dict[str, dict[str, Any]] = {}
        pending = [route.dependant]
        while pending:
            dependant = pending.pop()
            pending.extend(dependant.dependencies)
            answers = getattr(dependant.call, "openapi_responses", None)
            if not isinstance(answers, Mapping):
                continue
            for status, answer in answers.items():
                if str(status) in found:  # two limits on one route: one answer, both named
                    first = found[str(status)]
                    first["description"] += "; " + str(answer.get("description", ""))
                else:
                    found[str(status)] = copy.deepcopy(dict(answer))
        if found:
            for method in route.methods or ():
                declared[(route.path_format, method.lower())] = found
    return declared


def _document_errors(
    operation: dict[str, Any], style: str, declared: Mapping[str, dict[str, Any]]
) -> None:
    """Add the error answers every operation can give, where the app did not document them."""
    responses = operation.setdefault("responses", {})
    for status, answer in declared.items():
        answer = copy.deepcopy(answer)
        answer.setdefault(
            "content",
            {_MEDIA_TYPES[style]: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        )
        responses.setdefault(status, answer)
    security = operation.get("security") or []
    if security:
        responses.setdefault(
            "401", _error_response(style, "Missing, invalid, expired or revoked token")
        )
        if any(scopes for requirement in security for scopes in requirement.values()):
            responses.setdefault("403", _error_response(style, "Missing scope or inactive user"))
    responses.setdefault("4XX", _error_response(style, "Client error"))
    responses.setdefault("5XX", _error_response(style, "Server error or unavailable service"))
    if style == "problem":
        content = responses.get("422", {}).get("content", {})
        if "application/json" in content:
            content["application/problem+json"] = content.pop("application/json")


def document_error_responses(app: FastAPI, style: str) -> None:
    """Make ``app``'s OpenAPI describe the error bodies fastkit's handlers really send.

    422 gets its real body; every operation gets ``4XX`` and ``5XX`` answers in the error
    style (``ErrorResponse``), 401/403 where it requires a token or scopes, and the answers
    its dependencies declare in ``openapi_responses`` (a `RateLimit`'s 429), unless the
    app documented those codes itself. `install_exception_handlers` calls it.

    Args:
        app: The FastAPI application.
        style: ``"envelope"`` or ``"problem"``, as given to `install_exception_handlers`.
    """
    original = app.openapi

    documented: list[dict[str, Any]] = []  # the schema last documented (FastAPI caches it)

    def openapi() -> dict[str, Any]:
        schema = original()
        if documented and documented[0] is schema:
            return schema  # already done: no walk over the routes per /openapi.json
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = _VALIDATION_BODY_SCHEMAS[style]
            schemas["ValidationError"] = _VALIDATION_ITEM_SCHEMA
        schemas.setdefault("ErrorResponse", _ERROR_BODY_SCHEMAS[style])
        declared = _declared_responses(app)
        for path, path_item in schema.get("paths", {}).items():
            for method, operation in path_item.items():
                if method in _HTTP_METHODS and isinstance(operation, dict):
                    _document_errors(operation, style, declared.get((path, method), {}))
        documented[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
