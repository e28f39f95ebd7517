"""One structured log record per request."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp

from fastkit.middleware.observability import ObservabilityMiddleware

__all__ = ["AccessLogMiddleware"]


class AccessLogMiddleware(ObservabilityMiddleware):
    """Log one record per HTTP request when it completes.

    The message reads ``GET /items 200 1.52ms`` and the record carries the fields as
    attributes for structured formatters: ``method``, ``path``, ``status``,
    ``duration_ms`` (until the last byte of the response; background tasks that run after
    it are not counted), ``request_id`` (with `RequestIDMiddleware` outside it) and
    ``client`` (``"host:port"`` or None). The record is emitted when the app returns.
    Level INFO; 5xx (including an exception that escaped the app, logged as status 500)
    at ERROR. The query string is not logged: it may carry tokens. This is
    `ObservabilityMiddleware`'s access log with the request id and timing off.

    Args:
        app: The ASGI app to wrap.
        logger: A logger or logger name.

    Example:
        ```python
        app.add_middleware(AccessLogMiddleware)  # logger "fastkit.access"
        ```
    """

    def __init__(self, app: ASGIApp, *, logger: str | logging.Logger = "fastkit.access") -> None:
        super().__init__(app, request_id=False, timing=False, logger=logger)
