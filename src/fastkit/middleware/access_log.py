"""One structured log record per request."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.middleware.request_id import get_request_id

__all__ = ["AccessLogMiddleware"]


class AccessLogMiddleware:
    """Log one record per HTTP request when it completes.

    The message reads ``GET /items 200 1.52ms`` and the record carries the fields as
    attributes for structured formatters: ``method``, ``path``, ``status``,
    ``duration_ms``, ``request_id`` (with `RequestIDMiddleware` outside it) and ``client``
    (``"host:port"`` or None). Level INFO; 5xx (including an exception that escaped the app,
    logged as status 500) at ERROR. The query string is not logged: it may carry tokens.

    Args:
        app: The ASGI app to wrap.
        logger: A logger or logger name.

    Example:
        ```python
        app.add_middleware(AccessLogMiddleware)  # logger "fastkit.access"
        ```
    """

    def __init__(self, app: ASGIApp, *, logger: str | logging.Logger = "fastkit.access") -> None:
        self.app = app
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Skip the bookkeeping only when not even a 5xx (ERROR) record would be kept.
        if scope["type"] != "http" or not self.logger.isEnabledFor(logging.ERROR):
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before responding

        async def send_capturing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            self._log(scope, status, (time.perf_counter() - start) * 1000)

    def _log(self, scope: Scope, status: int, duration_ms: float) -> None:
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "request_id": get_request_id(),
            "client": f"{client[0]}:{client[1]}" if client else None,
        }
        self.logger.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "%s %s %d %.2fms",
            fields["method"],
            fields["path"],
            status,
            duration_ms,
            extra=fields,
        )
