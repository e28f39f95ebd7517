"""Request ids: keep a valid incoming ``X-Request-ID`` or make one, everywhere the request goes.

`RequestIDMiddleware` sets the id for the whole request (endpoint, dependencies,
exception handlers, background tasks), echoes it on the response and exposes it through
`get_request_id()`; `RequestIDLogFilter` puts it on every log record. The id itself is
kept by `fastkit.request_context`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp

from fastkit.middleware.observability import ObservabilityMiddleware
from fastkit.request_context import (
    STATE_HEADER,
    STATE_ID,
    default_request_id_generator,
    default_request_id_validator,
    get_request_id,
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


class RequestIDMiddleware(ObservabilityMiddleware):
    """Give every HTTP and websocket request an id, and echo it on the response.

    A valid incoming id (by ``validator``) is kept so that ids follow a request across
    services; anything else (missing, too long, control characters, non-ASCII) is replaced
    by ``generator()`` and never echoed. Lifespan scopes pass through untouched. The id is
    `ObservabilityMiddleware`'s request id with the access log and timing off.

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
        super().__init__(
            app,
            access_log=False,
            timing=False,
            request_id_header=header,
            request_id_generator=generator,
            request_id_validator=validator,
        )
        self.header = header


class RequestIDLogFilter(logging.Filter):
    """Put ``record.request_id`` on every record (``default`` outside a request), and
    ``record.trace_id`` / ``record.span_id`` (hex, as OpenTelemetry writes them; ``default``
    without a current span or without OpenTelemetry installed).

    Attach it to a handler and use ``%(request_id)s`` (and ``%(trace_id)s``) in the format.

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
        try:
            from opentelemetry.trace import get_current_span
        except ImportError:  # the otel extra is optional
            self._current_span: Callable[[], Any] | None = None
        else:
            self._current_span = get_current_span

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = get_request_id()
        record.request_id = request_id if request_id is not None else self.default
        trace_id = span_id = self.default
        if self._current_span is not None:
            context = self._current_span().get_span_context()
            if context.is_valid:
                trace_id = format(context.trace_id, "032x")
                span_id = format(context.span_id, "016x")
        record.trace_id, record.span_id = trace_id, span_id
        return True
