"""Pure ASGI middleware: request id, access log and timing (one layer), request body limits,
and validated CORS."""

from fastkit.middleware.access_log import AccessLogMiddleware
from fastkit.middleware.body_limit import (
    DEFAULT_MAX_BODY_SIZE,
    BodyLimit,
    BodyLimitMiddleware,
    KiB,
    MiB,
)
from fastkit.middleware.cors import add_cors
from fastkit.middleware.observability import ObservabilityMiddleware
from fastkit.middleware.request_id import (
    RequestIDLogFilter,
    RequestIDMiddleware,
    get_request_id,
)
from fastkit.middleware.security_headers import SecurityHeadersMiddleware
from fastkit.middleware.timing import TimingMiddleware

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "AccessLogMiddleware",
    "BodyLimit",
    "BodyLimitMiddleware",
    "KiB",
    "MiB",
    "ObservabilityMiddleware",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "SecurityHeadersMiddleware",
    "TimingMiddleware",
    "add_cors",
    "get_request_id",
]
