"""The exception handlers that render every error one way, and the 500 responder.

`install_exception_handlers` answers `AppError`, FastAPI/Starlette ``HTTPException``,
request validation errors and unhandled exceptions in the envelope
(``{"code", "message", "data"}``) or as RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, cast

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.exceptions import WebSocketException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.errors.exceptions import (
    NO_BODY_STATUS,
    SERVER_ERROR_MESSAGE,
    VALIDATION_MESSAGE,
    AppError,
    status_phrase,
)
from fastkit.errors.openapi import document_error_responses
from fastkit.request_context import STATE_HEADER, STATE_ID, escape_for_log, get_request_id

__all__ = [
    "ErrorStyle",
    "ProblemResponse",
    "UnhandledErrorMiddleware",
    "add_error_headers",
    "error_handlers_installed",
    "install_exception_handlers",
    "render_error",
]

logger = logging.getLogger("fastkit.errors")

ErrorStyle = Literal["envelope", "problem"]
_Handler = Callable[[Request, Exception], Awaitable[Response]]
_STYLES: tuple[str, ...] = ("envelope", "problem")
_STATE_KEY = "fastkit_error_style"


class ProblemResponse(JSONResponse):
    """A JSON response with the RFC 9457 media type ``application/problem+json``."""

    media_type = "application/problem+json"


def error_handlers_installed(app: Any) -> bool:
    """True if `install_exception_handlers` (or `fastkit.setup`) ran on ``app``.

    For code that raises an `AppError` from places where an app without fastkit's handlers
    would answer it 500: it can raise an ``HTTPException`` there instead.
    """
    state = getattr(app, "state", None)
    return getattr(state, _STATE_KEY, None) is not None


def _style_of(request: HTTPConnection) -> str:
    return str(getattr(request.app.state, _STATE_KEY, "envelope"))


_ERROR_HEADERS_KEY = "fastkit.error_headers"


def add_error_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Give every error answer rendered for this request ``headers`` too.

    For a dependency whose headers must reach the client whatever the route answers (rate
    limit fields on a 404 or a 422): headers set on FastAPI's ``Response`` parameter only
    reach successful answers. An exception's own headers win over these.
    """
    request.scope.setdefault(_ERROR_HEADERS_KEY, {}).update(headers)


def _render(
    request: HTTPConnection,
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
    kept = request.scope.get(_ERROR_HEADERS_KEY)
    if kept:
        headers = {**kept, **headers} if headers else kept
    if _style_of(request) == "problem":
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": status_phrase(status_code),
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
    request: HTTPConnection, exc: AppError, *, extra: Mapping[str, Any] | None = None
) -> Response:
    """Render an `AppError` in the style installed on the request's app.

    ``request`` may be a ``WebSocket``: the answer is then a websocket denial response
    (see `fastkit.websocket.refuse`).

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
        message, data = status_phrase(status_code), exc.detail
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
        # Already logged and answered by UnhandledErrorMiddleware; Starlette's outer
        # ServerErrorMiddleware calls us again but sends nothing once a response started.
        return Response(status_code=500)
    state[_STATE_RENDERED] = exc
    # The traceback goes to the log, never to the client.
    logger.error(
        "Unhandled %s on %s %s",
        type(exc).__name__,
        escape_for_log(request.method),
        escape_for_log(request.scope.get("path", "")),
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


class UnhandledErrorMiddleware:
    """Answer unhandled exceptions *inside* the user's middleware.

    Starlette renders them in ``ServerErrorMiddleware``, outside every user middleware, so
    a 500 would miss the CORS, request id and timing headers. `install_exception_handlers`
    puts this innermost, where it renders the 500 while those middleware still see it, then
    re-raises so the server logs and counts the failure as usual (Starlette sees the
    response started and sends nothing more). You do not add it yourself; a middleware that
    wraps it directly may call `answer` with its own ``send`` and skip this layer (as
    `ObservabilityMiddleware` does).

    Args:
        app: The ASGI app to wrap.
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
            await self.answer(scope, receive, send, exc, response_started=response_started)
            raise

    @staticmethod
    async def answer(
        scope: Scope, receive: Receive, send: Send, exc: Exception, *, response_started: bool
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
    OpenAPI's 422 schema is rewritten to match. A websocket refused with a
    ``WebSocketException`` (or failing validation) tells its client why, with
    `fastkit.websocket.refuse`: a close code and reason for browsers, an HTTP answer in
    this style for other clients.

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
    # A refused websocket tells its client why (a close code, or an HTTP answer).
    from fastkit.websocket.refusals import websocket_exception_handler  # imports this module

    for refused in (WebSocketException, WebSocketRequestValidationError):
        app.add_exception_handler(refused, cast(_Handler, websocket_exception_handler))
    installed: list[object] = [m.cls for m in app.user_middleware]
    if UnhandledErrorMiddleware not in installed:
        if app.middleware_stack is not None:
            raise RuntimeError(
                "install_exception_handlers must be called before the app starts serving."
            )
        # Innermost: later add_middleware() calls insert outside it.
        app.user_middleware.append(Middleware(UnhandledErrorMiddleware))
    document_error_responses(app, style)
