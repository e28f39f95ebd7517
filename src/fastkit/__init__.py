"""fastkit: reusable FastAPI building blocks.

The core (envelope, errors) needs no extra; integrations such as ``fastkit.db`` need
theirs (``pip install "fastkit[sqlalchemy]"``) and say so when it is missing.
"""

from fastkit._compat import MissingDependencyError
from fastkit.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
    install_exception_handlers,
    render_error,
)
from fastkit.responses import Envelope, EnvelopeRoute, ok

__version__ = "0.1.0.dev0"

__all__ = [
    "AppError",
    "BadRequest",
    "Conflict",
    "Envelope",
    "EnvelopeRoute",
    "Forbidden",
    "MissingDependencyError",
    "NotFound",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
    "__version__",
    "install_exception_handlers",
    "ok",
    "render_error",
]
