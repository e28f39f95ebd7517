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
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.middleware.request_id import STATE_HEADER, STATE_ID, get_request_id

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
# Statuses whose responses carry no body (RFC 9110).
NO_BODY_STATUS = frozenset({204, 205, 304})
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
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Render one error in the app's style.

    ``errors`` are validation errors; ``extra`` are members added to the body.
    """
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
        if extra:
            body.update(extra)
        return ProblemResponse(body, status_code=status_code, headers=headers)
    payload = list(errors) if errors is not None else jsonable_encoder(data)
    envelope = {"code": status_code if code is None else code, "message": message, "data": payload}
    if extra:
        envelope.update(extra)
    return JSONResponse(envelope, status_code=status_code, headers=headers)


def render_error(
    request: Request, exc: AppError, *, extra: Mapping[str, Any] | None = None
) -> Response:
    """Render an `AppError` in the style installed on the request's app.

    ``extra`` members are added to the body beside the style's own (a protocol's fields,
    e.g. OAuth2's ``error``). Use it in your own exception handlers so that their answers
    look like the rest:

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
        extra=extra,
    )


async def _app_error_handler(request: Request, exc: AppError) -> Response:
    return render_error(request, exc)


async def _http_exception_handler(request: Request, exc: StarletteHTTPException) -> Response:
    status_code = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if status_code in NO_BODY_STATUS or status_code < 200:
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


_STATE_RENDERED = "fastkit.error_rendered"


async def _unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    state = request.scope.setdefault("state", {})
    if state.get(_STATE_RENDERED) is exc:
        # Already logged and answered by _UnhandledErrorMiddleware; Starlette's outer
        # ServerErrorMiddleware calls us again but sends nothing once a response started.
        return Response(status_code=500)
    state[_STATE_RENDERED] = exc
    # The traceback goes to the log, never to the client.
    logger.error(
        "Unhandled %s on %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    # The request id (from RequestIDMiddleware) lets a user quote the failure to support.
    request_id = get_request_id() or state.get(STATE_ID)
    if request_id is None:
        return _render(request, status_code=500, message=SERVER_ERROR_MESSAGE)
    header = state.get(STATE_HEADER, "X-Request-ID")
    return _render(
        request,
        status_code=500,
        message=SERVER_ERROR_MESSAGE,
        headers={header: request_id},
        extra={"request_id": request_id},
    )


class _UnhandledErrorMiddleware:
    """Answer unhandled exceptions *inside* the user's middleware.

    Starlette renders them in ``ServerErrorMiddleware``, outside every user middleware, so
    a 500 would miss the CORS, request id and timing headers. Installed innermost, this
    renders the 500 where those middleware still see it, then re-raises so the server logs
    and counts the failure as usual (Starlette sees the response started and sends nothing
    more).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as exc:
            await _answer_unhandled(scope, receive, send, exc, response_started)
            raise


async def _answer_unhandled(
    scope: Scope, receive: Receive, send: Send, exc: Exception, response_started: bool
) -> None:
    """Send the 500 for ``exc`` unless the response started or the app handles it itself.

    The caller re-raises ``exc`` afterwards, so the server logs and counts the failure.
    """
    # An app that registered its own handler for Exception/500 after ours keeps it:
    # Starlette's ServerErrorMiddleware runs that one, as without fastkit.
    app = scope["app"]
    # As Starlette picks it: the last handler registered for Exception or 500.
    chosen = None
    for key, handler in app.exception_handlers.items():
        if key in (500, Exception):
            chosen = handler
    # debug=True keeps Starlette's traceback page.
    ours = chosen is _unhandled_exception_handler and not app.debug
    if ours and not response_started:
        response = await _unhandled_exception_handler(Request(scope), exc)
        # The re-raise makes the server drop the connection; say so, or a client reusing
        # it would see a reset.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def install_exception_handlers(app: FastAPI, *, style: ErrorStyle = "envelope") -> None:
    """Render every error of ``app`` in one style.

    Handles `AppError`, FastAPI/Starlette ``HTTPException`` (its ``headers`` kept, so
    ``WWW-Authenticate`` and ``Allow`` survive; unknown routes answer 404 and wrong
    methods 405), ``RequestValidationError`` (422, ``data`` a list of
    ``{"loc", "msg", "type"}``; malformed JSON bodies included) and any unhandled
    exception (logged with its traceback on the ``fastkit.errors`` logger at ERROR and
    answered 500 with no exception text; with `RequestIDMiddleware`, the 500 carries the
    request id as a header and as ``request_id`` in the body). Unhandled exceptions are
    answered inside the app's middleware, so CORS and other headers reach 500s too.
    OpenAPI's 422 schema is rewritten to match.

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
    installed: list[object] = [m.cls for m in app.user_middleware]
    if _UnhandledErrorMiddleware not in installed:
        if app.middleware_stack is not None:
            raise RuntimeError(
                "install_exception_handlers must be called before the app starts serving."
            )
        # Innermost: later add_middleware() calls insert outside it.
        app.user_middleware.append(Middleware(_UnhandledErrorMiddleware))
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


def _document_errors(operation: dict[str, Any], style: str) -> None:
    """Add the error answers every operation can give, where the app did not document them."""
    responses = operation.setdefault("responses", {})
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


def _document_validation_errors(app: FastAPI, style: str) -> None:
    """Make OpenAPI describe the error bodies these handlers really send.

    422 gets its real body; every operation gets ``4XX`` and ``5XX`` answers in the error
    style (``ErrorResponse``), and 401/403 where it requires a token or scopes, unless the
    app documented those codes itself.
    """
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = _VALIDATION_BODY_SCHEMAS[style]
            schemas["ValidationError"] = _VALIDATION_ITEM_SCHEMA
        schemas.setdefault("ErrorResponse", _ERROR_BODY_SCHEMAS[style])
        for path_item in schema.get("paths", {}).values():
            for method, operation in path_item.items():
                if method in _HTTP_METHODS and isinstance(operation, dict):
                    _document_errors(operation, style)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
