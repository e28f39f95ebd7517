"""Pure ASGI middleware: request id, access log and timing (one layer), and validated CORS."""

from fastkit.middleware.access_log import AccessLogMiddleware
from fastkit.middleware.cors import add_cors
from fastkit.middleware.observability import ObservabilityMiddleware
from fastkit.middleware.request_id import (
    RequestIDLogFilter,
    RequestIDMiddleware,
    get_request_id,
)
from fastkit.middleware.timing import TimingMiddleware

__all__ = [
    "AccessLogMiddleware",
    "ObservabilityMiddleware",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "TimingMiddleware",
    "add_cors",
    "get_request_id",
]
