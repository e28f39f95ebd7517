"""Application errors and the exception handlers that render every error one way.

Raise an `AppError` subclass anywhere (endpoint, dependency, service code) and
`install_exception_handlers` answers it, FastAPI/Starlette ``HTTPException``, request
validation errors and unhandled exceptions in the envelope
(``{"code", "message", "data"}``) or as RFC 9457 ``application/problem+json``.

The names live in three modules: `fastkit.errors.exceptions` (the `AppError` tree),
`fastkit.errors.handlers` (rendering, the handlers, `UnhandledErrorMiddleware`) and
`fastkit.errors.openapi` (the error answers in OpenAPI); import them from here.
"""

from fastkit.errors.exceptions import (
    NO_BODY_STATUS,
    SERVER_ERROR_MESSAGE,
    VALIDATION_MESSAGE,
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
    status_phrase,
)
from fastkit.errors.handlers import (
    ErrorStyle,
    ProblemResponse,
    UnhandledErrorMiddleware,
    add_error_headers,
    error_handlers_installed,
    install_exception_handlers,
    render_error,
)
from fastkit.errors.openapi import document_error_responses

__all__ = [
    "NO_BODY_STATUS",
    "SERVER_ERROR_MESSAGE",
    "VALIDATION_MESSAGE",
    "AppError",
    "BadRequest",
    "Conflict",
    "ContentTooLarge",
    "ErrorStyle",
    "Forbidden",
    "NotFound",
    "ProblemResponse",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnhandledErrorMiddleware",
    "UnprocessableEntity",
    "add_error_headers",
    "document_error_responses",
    "error_handlers_installed",
    "install_exception_handlers",
    "render_error",
    "status_phrase",
]
