"""fastkit: reusable FastAPI building blocks.

The core (envelope, errors) needs no extra; integrations such as ``fastkit.db`` need
theirs (``pip install "fastkit-fastapi[sqlalchemy]"``) and say so when it is missing.
"""

from fastkit._compat import MissingDependencyError
from fastkit.app import setup
from fastkit.errors import (
    AppError,
    BadRequest,
    Conflict,
    ContentTooLarge,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
    install_exception_handlers,
    render_error,
)
from fastkit.middleware import (
    AccessLogMiddleware,
    BodyLimit,
    BodyLimitMiddleware,
    MiB,
    ObservabilityMiddleware,
    RequestIDLogFilter,
    RequestIDMiddleware,
    SecurityHeadersMiddleware,
    TimingMiddleware,
    add_cors,
    get_request_id,
)
from fastkit.responses import Envelope, EnvelopeRoute, ok
from fastkit.routing import OptionalSlashRouter
from fastkit.staticfiles import SPAStaticFiles

__version__ = "0.2.0.dev0"

__all__ = [
    "AccessLogMiddleware",
    "AppError",
    "BadRequest",
    "BodyLimit",
    "BodyLimitMiddleware",
    "Conflict",
    "ContentTooLarge",
    "Envelope",
    "EnvelopeRoute",
    "Forbidden",
    "MiB",
    "MissingDependencyError",
    "NotFound",
    "ObservabilityMiddleware",
    "OptionalSlashRouter",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "SPAStaticFiles",
    "SecurityHeadersMiddleware",
    "ServiceUnavailable",
    "TimingMiddleware",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
    "__version__",
    "add_cors",
    "get_request_id",
    "install_exception_handlers",
    "ok",
    "render_error",
    "setup",
]
