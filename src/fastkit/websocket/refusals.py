"""Refusing a websocket so that the client can read why: a close code, or an HTTP answer.

A websocket refused before it is accepted (``websocket.close()`` during the handshake, what
Starlette does with a ``WebSocketException``) reaches the client as a bare HTTP 403: a
browser's ``close`` event then says ``1006`` with no reason, the same as a network failure.
`refuse` answers each kind of client in a form it can read:

- **a browser** (the handshake carries ``Origin``, which every browser sends): the socket
  is accepted, then closed at once with the close code and the reason, which the page's
  ``CloseEvent`` has (``code`` and ``reason``);
- **any other client**, when the server supports the ASGI websocket denial response
  (uvicorn, Hypercorn, Starlette's TestClient): an HTTP answer with the status and the
  app's error body (the envelope, or RFC 9457 problem details), e.g. 401 with
  ``WWW-Authenticate: Bearer``; else the browser's form.

`fastkit.errors.install_exception_handlers` (and so `fastkit.setup`) answers every
``WebSocketException`` and websocket validation error this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.exceptions import WebSocketRequestValidationError
from starlette.exceptions import WebSocketException
from starlette.websockets import WebSocket, WebSocketState

from fastkit.errors import AppError, render_error
from fastkit.request_context import STATE_HEADER, STATE_ID, get_request_id

__all__ = ["WebSocketRefused", "refuse", "websocket_exception_handler"]

# RFC 6455 5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
MAX_REASON_BYTES = 123

# The HTTP status a plain WebSocketException's close code stands for.
_STATUS_FOR_CODE = {1008: 403, 1009: 413, 1011: 500, 1012: 503, 1013: 503, 1003: 400}


class WebSocketRefused(WebSocketException):
    """A ``WebSocketException`` that also says which HTTP status a denial answer gets.

    Raise it in a websocket dependency or handler before ``accept``; with fastkit's
    exception handlers installed, the client is told why (see `refuse`).

    Args:
        code: The close code a browser sees (1008 policy violation, 1013 try again later).
        reason: One short sentence for the client (cut at 123 UTF-8 bytes).
        status_code: The HTTP status of the denial answer other clients get.
        headers: Headers of the denial answer (``WWW-Authenticate``, ``Retry-After``).

    Example:
        ```python
        raise WebSocketRefused(1008, "Room is full", status_code=403)
        ```
    """

    def __init__(
        self,
        code: int = 1008,
        reason: str | None = None,
        *,
        status_code: int = 403,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status_code <= 599:
            raise ValueError(f"status_code must be between 400 and 599, got {status_code}.")
        super().__init__(code, reason)
        self.status_code = status_code
        self.headers = dict(headers) if headers else None


def _short(reason: str) -> str:
    """``reason`` cut to what a close frame can carry, on a character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return reason
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


def _offered_subprotocol(websocket: WebSocket) -> str | None:
    """The first subprotocol the client offered: a browser fails a handshake whose answer
    names none of those it offered, before it could read the close code."""
    offered = websocket.headers.get("sec-websocket-protocol", "")
    first = offered.split(",")[0].strip()
    return first or None


async def refuse(
    websocket: WebSocket,
    code: int = 1008,
    reason: str = "",
    *,
    status_code: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Refuse ``websocket`` so that the client can read ``code`` or ``status_code`` and why.

    Before the socket is accepted: a browser (``Origin`` present) or a server without the
    denial response extension gets accept-then-close with ``code`` and ``reason``; other
    clients get an HTTP answer with ``status_code`` (by default the status ``code`` stands
    for: 403 for 1008, 503 for 1013...) and the app's error body. Once accepted, the socket
    is closed with ``code`` and ``reason``. The socket is closed when this returns.

    Example:
        ```python
        if room not in rooms:
            await refuse(websocket, 1008, "No such room", status_code=404)
            return
        ```
    """
    reason = _short(reason)
    if websocket.application_state == WebSocketState.CONNECTING:
        # The handshake's request id (ObservabilityMiddleware), on either answer: a client
        # can quote it, and it names the refusal in the logs.
        state = websocket.scope.get("state") or {}
        request_id = get_request_id() or state.get(STATE_ID)
        id_header = {state.get(STATE_HEADER, "X-Request-ID"): request_id} if request_id else {}
        browser = "origin" in websocket.headers
        if not browser and "websocket.http.response" in websocket.scope.get("extensions", {}):
            status = status_code or _STATUS_FOR_CODE.get(code, 403)
            answer = {**(headers or {}), **id_header}
            error = AppError(reason or None, status_code=status, headers=answer)
            await websocket.send_denial_response(render_error(websocket, error))
            return
        await websocket.accept(
            subprotocol=_offered_subprotocol(websocket),
            headers=[
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in id_header.items()
            ],
        )
    if websocket.application_state == WebSocketState.CONNECTED:
        await websocket.close(code=code, reason=reason)


def _validation_reason(exc: WebSocketRequestValidationError) -> str:
    """``Invalid room: String should match pattern ...`` from the first error."""
    errors: Any = exc.errors()
    if not errors:
        return "Invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
    return f"Invalid {where}: {first.get('msg', 'invalid value')}"


async def websocket_exception_handler(websocket: WebSocket, exc: Exception) -> None:
    """Answer a ``WebSocketException`` or a websocket validation error with `refuse`.

    `install_exception_handlers` registers it; register it yourself on an app without
    fastkit's handlers:
    ``app.add_exception_handler(WebSocketException, websocket_exception_handler)``.
    """
    if isinstance(exc, WebSocketRequestValidationError):
        await refuse(websocket, 1008, _validation_reason(exc), status_code=422)
        return
    if not isinstance(exc, WebSocketException):  # pragma: no cover - registered for these
        raise exc
    if isinstance(exc, WebSocketRefused):
        await refuse(
            websocket, exc.code, exc.reason, status_code=exc.status_code, headers=exc.headers
        )
    else:
        await refuse(websocket, exc.code, exc.reason)
