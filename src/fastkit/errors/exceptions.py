"""The `AppError` tree: errors raised anywhere and answered to the client as they are.

`fastkit.errors.handlers` renders them; this module needs nothing but the standard library.
"""

from __future__ import annotations

import http
from collections.abc import Mapping
from typing import Any

__all__ = [
    "NO_BODY_STATUS",
    "SERVER_ERROR_MESSAGE",
    "VALIDATION_MESSAGE",
    "AppError",
    "BadRequest",
    "Conflict",
    "ContentTooLarge",
    "Forbidden",
    "NotFound",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
    "status_phrase",
]

VALIDATION_MESSAGE = "Request validation failed"
# Statuses whose responses carry no body (RFC 9110).
NO_BODY_STATUS = frozenset({204, 205, 304})
SERVER_ERROR_MESSAGE = "Internal Server Error"


def status_phrase(status_code: int) -> str:
    """The reason phrase of ``status_code`` (``404`` -> ``"Not Found"``), or ``"Error"``."""
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


class AppError(Exception):
    """Base class for errors that are answered to the client as they are.

    The ``message`` is meant for the client; put nothing secret in it. Subclasses set
    ``status_code`` and a default message; ``code`` is an optional business code that
    replaces the HTTP status in the envelope's ``code`` (the HTTP status stays real).

    Args:
        message: Text for the client; defaults to the class's message.
        status_code: HTTP status, 400-599; defaults to the class's.
        code: Business code for the envelope; defaults to the HTTP status.
        data: Extra JSON-able details put in the body's ``data``.
        headers: Extra response headers (e.g. ``Retry-After``).

    Raises:
        ValueError: If ``status_code`` is not an error status (400-599).

    Example:
        ```python
        class InsufficientFunds(AppError):
            status_code = 402
            message = "Insufficient funds"

        raise InsufficientFunds(code=10001, data={"balance": 3})
        ```
    """

    status_code: int = 400
    message: str = "Bad Request"

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        code: int | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status_code is not None:
            if not 400 <= status_code <= 599:
                raise ValueError(
                    f"status_code must be an error status between 400 and 599, got {status_code}."
                )
            self.status_code = status_code
            if message is None and type(self).message == AppError.message:
                self.message = status_phrase(status_code)
        if message is not None:
            self.message = message
        self.code = code
        self.data = data
        self.headers = dict(headers) if headers else None
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code})"


class BadRequest(AppError):
    """400: the request is well-formed but cannot be processed as asked."""

    status_code = 400
    message = "Bad Request"


class Unauthorized(AppError):
    """401: missing or invalid credentials.

    Sends ``WWW-Authenticate: Bearer`` unless other headers are given.
    """

    status_code = 401
    message = "Not authenticated"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            message, code=code, data=data, headers=headers or {"WWW-Authenticate": "Bearer"}
        )


class Forbidden(AppError):
    """403: authenticated, but not allowed."""

    status_code = 403
    message = "Forbidden"


class NotFound(AppError):
    """404: the resource does not exist (or is not visible to this user)."""

    status_code = 404
    message = "Not Found"


class Conflict(AppError):
    """409: the request conflicts with the current state (duplicate, stale version...)."""

    status_code = 409
    message = "Conflict"


class ContentTooLarge(AppError):
    """413: the request body is larger than the route accepts."""

    status_code = 413
    message = "Content Too Large"


class UnprocessableEntity(AppError):
    """422: semantically invalid input that passed schema validation."""

    status_code = 422
    message = "Unprocessable Entity"


class TooManyRequests(AppError):
    """429: rate limited; pass ``headers={"Retry-After": "30"}`` when known."""

    status_code = 429
    message = "Too Many Requests"


class ServiceUnavailable(AppError):
    """503: a dependency (database, cache...) is unavailable; retry later."""

    status_code = 503
    message = "Service Unavailable"
