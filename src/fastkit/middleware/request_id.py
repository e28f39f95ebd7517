"""Request ids: keep a valid incoming ``X-Request-ID`` or make one, everywhere the request goes.

`RequestIDMiddleware` sets the id for the whole request (endpoint, dependencies,
exception handlers, background tasks), echoes it on the response and exposes it through
`get_request_id()`; `RequestIDLogFilter` puts it on every log record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import Token

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.middleware._headers import set_header
from fastkit.request_context import (
    STATE_HEADER,
    STATE_ID,
    default_request_id_generator,
    default_request_id_validator,
    get_request_id,
    reset_request_id,
    set_request_id,
)

__all__ = [
    "STATE_HEADER",
    "STATE_ID",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "default_request_id_generator",
    "default_request_id_validator",
    "get_request_id",
]


class RequestIDMiddleware:
    """Give every HTTP and websocket request an id, and echo it on the response.

    A valid incoming id (by ``validator``) is kept so that ids follow a request across
    services; anything else (missing, too long, control characters, non-ASCII) is replaced
    by ``generator()`` and never echoed. Lifespan scopes pass through untouched.

    Args:
        app: The ASGI app to wrap.
        header: The request and response header that carries the id.
        generator: Makes a new id.
        validator: Decides whether an incoming id is kept.

    Raises:
        ValueError: If ``header`` is empty.

    Example:
        ```python
        app.add_middleware(RequestIDMiddleware)
        ```
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "X-Request-ID",
        generator: Callable[[], str] = default_request_id_generator,
        validator: Callable[[str], bool] = default_request_id_validator,
    ) -> None:
        if not header or not header.strip():
            raise ValueError("header must be a non-empty header name, e.g. 'X-Request-ID'.")
        self.app = app
        self.header = header
        self._header_key = header.lower().encode("latin-1")
        self.generator = generator
        self.validator = validator

    def _incoming(self, scope: Scope) -> str | None:
        wanted = self._header_key
        for key, value in scope["headers"]:
            if key == wanted:
                try:
                    candidate = value.decode("ascii")
                except UnicodeDecodeError:
                    return None
                return candidate if self.validator(candidate) else None
        return None

    def begin(self, scope: Scope) -> tuple[str, Token[str | None]]:
        """Pick the request's id, publish it (contextvar, ``scope["state"]``); return it.

        Pass the returned token to `reset_request_id` when the request ends.
        """
        request_id = self._incoming(scope) or self.generator()
        return request_id, set_request_id(scope, request_id, self.header)

    def stamp(self, message: Message, request_id: str) -> None:
        """Put the id on an ``http.response.start`` message."""
        set_header(message, self._header_key, request_id.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        request_id, token = self.begin(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stamp(message, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_request_id(token)


class RequestIDLogFilter(logging.Filter):
    """Put ``record.request_id`` on every record (``default`` outside a request).

    Attach it to a handler and use ``%(request_id)s`` in the format.

    Example:
        ```python
        handler = logging.StreamHandler()
        handler.addFilter(RequestIDLogFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(request_id)s %(message)s"))
        ```
    """

    def __init__(self, name: str = "", default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = get_request_id()
        record.request_id = request_id if request_id is not None else self.default
        return True
