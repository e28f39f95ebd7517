"""A limit on request bodies, checked as they are read: 413 before memory fills up.

FastAPI reads a whole JSON or form body before any dependency runs (authentication
included), with no limit of its own: one unauthenticated 100 MB ``POST`` grows a worker by
hundreds of MiB before it answers 401. `BodyLimitMiddleware` (which `fastkit.setup`
installs with a 1 MiB default) refuses a body as soon as it is known to be too large: a
``Content-Length`` over the limit when the app first asks for the body, before a byte of
it is read; a chunked body (or one longer than it said) once the bytes read pass the
limit. Either way the answer is 413 in the app's error style, and the rest of the body is
never read.

Routes that take more (uploads) or less declare it with a `BodyLimit` dependency, on the
route or its router; the route's own limit wins over its router's, and both over the
middleware's default.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.errors import ContentTooLarge, render_error
from fastkit.routing import matched_route

__all__ = ["DEFAULT_MAX_BODY_SIZE", "BodyLimit", "BodyLimitMiddleware", "KiB", "MiB"]

KiB = 1024
MiB = 1024 * 1024
DEFAULT_MAX_BODY_SIZE = 1 * MiB
"""What `fastkit.setup` allows by default: 1 MiB, plenty for JSON APIs."""


def check_size(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"{name} must be a whole number of bytes (0 or more), got {value!r}; "
            "write 10 * MiB for ten mebibytes."
        )
    return value


def _message(limit: int) -> str:
    return f"Request body too large; send at most {limit} bytes."


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing passes it on
    (it turns other errors into 400), and any error handler can answer it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))
        self.limit = limit


class BodyLimit:
    """A route's own body limit, as a dependency: ``Depends(BodyLimit(50 * MiB))``.

    `BodyLimitMiddleware` reads it when the route first asks for its body (so before
    FastAPI parses it); on a router (``dependencies=[...]``) it covers the router's routes,
    and a route's own wins. Calling it does nothing. The 413 is documented in OpenAPI.

    Args:
        max_size: Bytes the route accepts (``None`` for no limit at all).

    Raises:
        ValueError: If ``max_size`` is not a whole number of bytes or None.

    Example:
        ```python
        from fastapi import Depends, UploadFile
        from fastkit.middleware import BodyLimit, MiB

        @app.post("/files", dependencies=[Depends(BodyLimit(100 * MiB))])
        async def upload(file: UploadFile) -> dict[str, int]: ...
        ```
    """

    def __init__(self, max_size: int | None) -> None:
        self.max_size = None if max_size is None else check_size(max_size, "max_size")
        limit = "no limit" if max_size is None else f"at most {max_size} bytes"
        self.openapi_responses: dict[int, dict[str, Any]] = (
            {} if max_size is None else {413: {"description": f"Request body too large ({limit})"}}
        )

    def __repr__(self) -> str:
        return f"BodyLimit({self.max_size!r})"

    async def __call__(self) -> None:
        """Nothing: the middleware enforces the limit before the route's body is parsed."""


_UNSET: Any = object()


class BodyLimitMiddleware:
    """Answer 413 to request bodies over ``max_body_size`` bytes, reading no more of them.

    Pure ASGI: it wraps ``receive``. When the app first asks for the body, a declared
    ``Content-Length`` over the route's limit is refused before a byte is read; then the
    bytes are counted as they arrive, so a chunked body is cut at the limit. The 413 goes
    through the app's error handlers (in its style: the envelope with fastkit's); raised
    where no handler sees it (a middleware reading the body), this layer answers it.
    Requests that never read their body are not touched.

    Args:
        app: The ASGI app.
        max_body_size: Bytes a request body may have (routes can say otherwise with
            `BodyLimit`); None for no default limit.

    Raises:
        ValueError: If ``max_body_size`` is not a whole number of bytes or None.
    """

    def __init__(self, app: ASGIApp, *, max_body_size: int | None = DEFAULT_MAX_BODY_SIZE) -> None:
        self.app = app
        self.max_body_size = (
            None if max_body_size is None else check_size(max_body_size, "max_body_size")
        )
        # Each route's limit, found once: id(route) -> (route, limit or _UNSET for none).
        self._route_limits: dict[int, tuple[Any, Any]] = {}

    def limit_for(self, scope: Scope) -> int | None:
        """The limit for this request's route: its `BodyLimit`, else the default."""
        route = matched_route(scope)
        if route is None:
            return self.max_body_size
        cached = self._route_limits.get(id(route))
        if cached is None or cached[0] is not route:
            if len(self._route_limits) > 4096:  # routes rebuilt many times: start over
                self._route_limits.clear()
            cached = self._route_limits[id(route)] = (route, _declared_limit(route))
        return self.max_body_size if cached[1] is _UNSET else cached[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not may_have_body(scope):
            await self.app(scope, receive, send)
            return
        limit: Any = _UNSET
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal limit, received
            if limit is _UNSET:  # the first read: the route is known by now
                limit = self.limit_for(scope)
                if limit is not None:
                    declared = _content_length(scope)
                    if declared is not None and declared > limit:
                        raise _BodyTooLarge(limit)
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def send_started(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, send_started)
        except _BodyTooLarge as exc:
            if started:
                raise
            response = render_error(Request(scope), ContentTooLarge(str(exc.detail)))
            await response(scope, receive, send)


def _declared_limit(route: Any) -> Any:
    """The last `BodyLimit` among a route's dependencies (its routers' come first, then
    its own), or _UNSET."""
    found: Any = _UNSET
    dependant = getattr(route, "dependant", None)
    pending = [dependant] if dependant is not None else []
    while pending:  # depth first, in declaration order
        current = pending.pop(0)
        if isinstance(current.call, BodyLimit):
            found = current.call.max_size
        pending[:0] = current.dependencies
    return found


def may_have_body(scope: Scope) -> bool:
    """False for an HTTP/1 request without ``Content-Length`` or ``Transfer-Encoding``:
    it has no body (RFC 9112 6.3), so there is nothing to count (most GETs)."""
    if scope.get("http_version") not in ("1.1", "1.0"):
        return True  # HTTP/2 and 3 frame bodies without either header
    for name, _ in scope["headers"]:
        if name == b"content-length" or name == b"transfer-encoding":
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    """The declared ``Content-Length`` (None if absent or unreadable: then bytes count)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
