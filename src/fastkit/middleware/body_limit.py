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

import anyio
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
        # Connection: close: the server need not read (and throw away) the rest.
        super().__init__(413, _message(limit), headers={"Connection": "close"})
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
        started = False  # the app's answer has begun
        refused: _BodyTooLarge | None = None  # raised from receive
        answered = False  # this layer sent the 413 itself

        async def limited_receive() -> Message:
            nonlocal limit, received, refused
            if limit is _UNSET:  # the first read: the route is known by now
                limit = self.limit_for(scope)
                if limit is not None:
                    declared = _content_length(scope)
                    if declared is not None and declared > limit:
                        refused = _BodyTooLarge(limit)
            if refused is None:
                message = await receive()
                if limit is None or message["type"] != "http.request":
                    return message
                received += len(message.get("body", b""))
                if received <= limit:
                    return message
                refused = _BodyTooLarge(limit)
            if started:
                # Too late for a 413: as if the client had gone (a streamed answer stops).
                return {"type": "http.disconnect"}
            raise refused

        async def send_checked(message: Message) -> None:
            nonlocal started, answered
            if (
                refused is not None
                and not started
                and (message["type"] != "http.response.start" or message["status"] != 413)
            ):
                # The body was refused, but an answer other than the 413 comes (a streamed
                # one, started beside the read that was refused): the 413 goes instead,
                # whole, though the task sending it is being cancelled.
                if not answered:
                    answered = True
                    with anyio.CancelScope(shield=True):
                        await self._too_large(scope, receive, send, refused)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, send_checked)
        except Exception as exc:
            if answered:
                return  # the app unwinding after the 413 went out ("response already started")
            if refused is None or started or not _caused_by(exc, _BodyTooLarge):
                raise
            # Read where no exception handler sees it (a middleware reading the body).
            await self._too_large(scope, receive, send, refused)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, exc: _BodyTooLarge) -> None:
        too_large = ContentTooLarge(str(exc.detail), headers=exc.headers)
        await render_error(Request(scope), too_large)(scope, receive, send)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` is a ``kind``, or an exception group (a task group's) holding one."""
    if isinstance(exc, kind):
        return True
    inner = getattr(exc, "exceptions", None)
    return isinstance(inner, (list, tuple)) and any(_caused_by(e, kind) for e in inner)


def _declared_limit(route: Any) -> Any:
    """The route's `BodyLimit`, or _UNSET: among those declared on the route and its
    routers (``dependencies=[...]``; the routers' come first, the route's last, and the last
    wins), else among those of their dependencies, level by level."""
    dependant = getattr(route, "dependant", None)
    level = list(dependant.dependencies) if dependant is not None else []
    while level:
        found = [d.call.max_size for d in level if isinstance(d.call, BodyLimit)]
        if found:
            return found[-1]
        level = [sub for d in level for sub in d.dependencies]
    return _UNSET


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
