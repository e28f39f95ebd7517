"""Application errors and the exception handlers that render every error one way.

Raise an `AppError` subclass anywhere (endpoint, dependency, service code) and
`install_exception_handlers` answers it, FastAPI/Starlette ``HTTPException``, request
validation errors and unhandled exceptions in the envelope
(``{"code", "message", "data"}``) or as RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, cast

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "AppError",
    "BadRequest",
    "Conflict",
    "ErrorStyle",
    "Forbidden",
    "NotFound",
    "ProblemResponse",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
    "install_exception_handlers",
    "render_error",
]

logger = logging.getLogger("fastkit.errors")

ErrorStyle = Literal["envelope", "problem"]
_Handler = Callable[[Request, Exception], Awaitable[Response]]
_STYLES: tuple[str, ...] = ("envelope", "problem")
_STATE_KEY = "fastkit_error_style"

VALIDATION_MESSAGE = "Request validation failed"
SERVER_ERROR_MESSAGE = "Internal Server Error"


def _phrase(status_code: int) -> str:
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


class AppError(Exception):
    """Base class for errors that are answered to the client as they are.

    The ``message`` is meant for the client; put nothing secret in it. Subclasses set
    ``status_code`` and a default message; ``code`` is an optional business code that
    replaces the HTTP status in the envelope's ``code`` (the HTTP status stays real).

    Args:
        message: Text for the client; defaults to the class's message.
        status_code: HTTP status, 400-599; defaults to the class's.
        code: Business code for the envelope; defaults to the HTTP status.
        data: Extra JSON-able details put in the body's ``data``.
        headers: Extra response headers (e.g. ``Retry-After``).

    Raises:
        ValueError: If ``status_code`` is not an error status (400-599).

    Example:
        ```python
        class InsufficientFunds(AppError):
            status_code = 402
            message = "Insufficient funds"

        raise InsufficientFunds(code=10001, data={"balance": 3})
        ```
    """

    status_code: int = 400
    message: str = "Bad Request"

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        code: int | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status_code is not None:
            if not 400 <= status_code <= 599:
                raise ValueError(
                    f"status_code must be an error status between 400 and 599, got {status_code}."
                )
            self.status_code = status_code
            if message is None and type(self).message == AppError.message:
                self.message = _phrase(status_code)
        if message is not None:
            self.message = message
        self.code = code
        self.data = data
        self.headers = dict(headers) if headers else None
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code})"


class BadRequest(AppError):
    """400: the request is well-formed but cannot be processed as asked."""

    status_code = 400
    message = "Bad Request"


class Unauthorized(AppError):
    """401: missing or invalid credentials.

    Sends ``WWW-Authenticate: Bearer`` unless other headers are given.
    """

    status_code = 401
    message = "Not authenticated"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            message, code=code, data=data, headers=headers or {"WWW-Authenticate": "Bearer"}
        )


class Forbidden(AppError):
    """403: authenticated, but not allowed."""

    status_code = 403
    message = "Forbidden"


class NotFound(AppError):
    """404: the resource does not exist (or is not visible to this user)."""

    status_code = 404
    message = "Not Found"


class Conflict(AppError):
    """409: the request conflicts with the current state (duplicate, stale version...)."""

    status_code = 409
    message = "Conflict"


class UnprocessableEntity(AppError):
    """422: semantically invalid input that passed schema validation."""

    status_code = 422
    message = "Unprocessable Entity"


class TooManyRequests(AppError):
    """429: rate limited; pass ``headers={"Retry-After": "30"}`` when known."""

    status_code = 429
    message = "Too Many Requests"


class ServiceUnavailable(AppError):
    """503: a dependency (database, cache...) is unavailable; retry later."""

    status_code = 503
    message = "Service Unavailable"


class ProblemResponse(JSONResponse):
    """A JSON response with the RFC 9457 media type ``application/problem+json``."""

    media_type = "application/problem+json"


def _style_of(request: Request) -> str:
    return str(getattr(request.app.state, _STATE_KEY, "envelope"))


def _render(
    request: Request,
    *,
    status_code: int,
    message: str,
    code: int | None = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> Response:
    """Render one error in the app's style. ``errors`` are validation errors."""
    if _style_of(request) == "problem":
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": _phrase(status_code),
            "status": status_code,
            "detail": message,
            "instance": request.url.path,
        }
        if code is not None and code != status_code:
            body["code"] = code
        if errors is not None:
            body["errors"] = list(errors)
        elif data is not None:
            body["data"] = jsonable_encoder(data)
        return ProblemResponse(body, status_code=status_code, headers=headers)
    payload = list(errors) if errors is not None else jsonable_encoder(data)
    return JSONResponse(
        {"code": status_code if code is None else code, "message": message, "data": payload},
        status_code=status_code,
        headers=headers,
    )


def render_error(request: Request, exc: AppError) -> Response:
    """Render an `AppError` in the style installed on the request's app.

    Use it in your own exception handlers so that their answers look like the rest:

    Example:
        ```python
        @app.exception_handler(PaymentGatewayError)
        async def gateway_down(request: Request, exc: PaymentGatewayError) -> Response:
            return render_error(request, ServiceUnavailable("Payments are down, retry later"))
        ```
    """
    return _render(
        request,
        status_code=exc.status_code,
        message=exc.message,
        code=exc.code,
        data=exc.data,
        headers=exc.headers,
    )


async def _app_error_handler(request: Request, exc: AppError) -> Response:
    return render_error(request, exc)


async def _http_exception_handler(request: Request, exc: StarletteHTTPException) -> Response:
    status_code = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if status_code in (204, 304) or status_code < 200:
        # No body is allowed; keep the status and headers only.
        return Response(status_code=status_code, headers=headers)
    if isinstance(exc.detail, str):
        message, data = exc.detail, None
    else:
        message, data = _phrase(status_code), exc.detail
    return _render(request, status_code=status_code, message=message, data=data, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only loc/msg/type: ``input`` may echo secrets (passwords) and ``ctx`` may hold
    # exception objects that are not JSON-able.
    return [
        {
            "loc": [part if isinstance(part, (str, int)) else str(part) for part in err["loc"]],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]


async def _validation_exception_handler(request: Request, exc: RequestValidationError) -> Response:
    return _render(
        request, status_code=422, message=VALIDATION_MESSAGE, errors=_validation_errors(exc)
    )


async def _unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log, never to the client.
    logger.error(
        "Unhandled %s on %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return _render(request, status_code=500, message=SERVER_ERROR_MESSAGE)


def install_exception_handlers(app: FastAPI, *, style: ErrorStyle = "envelope") -> None:
    """Render every error of ``app`` in one style.

    Handles `AppError`, FastAPI/Starlette ``HTTPException`` (its ``headers`` kept, so
    ``WWW-Authenticate`` and ``Allow`` survive; unknown routes answer 404 and wrong
    methods 405), ``RequestValidationError`` (422, ``data`` a list of
    ``{"loc", "msg", "type"}``; malformed JSON bodies included) and any unhandled
    exception (logged with its traceback on the ``fastkit.errors`` logger at ERROR and
    answered 500 with no exception text). OpenAPI's 422 schema is rewritten to match.

    Your own handlers for your own exception types still work: register them with
    ``app.add_exception_handler`` and build their answer with `render_error`.

    Args:
        app: The FastAPI application.
        style: ``"envelope"`` for ``{"code", "message", "data"}`` bodies, or
            ``"problem"`` for RFC 9457 ``application/problem+json``.

    Raises:
        ValueError: If ``style`` is not one of the two.
    """
    if style not in _STYLES:
        raise ValueError(f"style must be 'envelope' or 'problem', got {style!r}.")
    setattr(app.state, _STATE_KEY, style)
    # Starlette types handlers as taking ``Exception``; each is registered for its own type.
    app.add_exception_handler(AppError, cast(_Handler, _app_error_handler))
    app.add_exception_handler(StarletteHTTPException, cast(_Handler, _http_exception_handler))
    app.add_exception_handler(RequestValidationError, cast(_Handler, _validation_exception_handler))
    app.add_exception_handler(Exception, _unhandled_exception_handler)
    _document_validation_errors(app, style)


# --- OpenAPI ------------------------------------------------------------------------

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


def _document_validation_errors(app: FastAPI, style: str) -> None:
    """Make OpenAPI's 422 response describe the body these handlers really send."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = _VALIDATION_BODY_SCHEMAS[style]
            schemas["ValidationError"] = _VALIDATION_ITEM_SCHEMA
        if style == "problem":
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    if not isinstance(operation, dict):
                        continue
                    content = operation.get("responses", {}).get("422", {}).get("content", {})
                    if "application/json" in content:
                        content["application/problem+json"] = content.pop("application/json")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
