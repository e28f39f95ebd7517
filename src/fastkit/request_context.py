"""The current request's context: its id (kept, read, made, checked) and its extra headers.

The one owner of the request context. `fastkit.middleware.RequestIDMiddleware` (or
`ObservabilityMiddleware`) picks the id and publishes it with `set_request_id`; everything
else (endpoints, log filters, the error handlers) reads it with `get_request_id`, or from
``scope["state"]`` where the context variable is out of reach.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from contextvars import ContextVar, Token

from starlette.types import Scope

__all__ = [
    "RESPONSE_HEADERS",
    "STATE_HEADER",
    "STATE_ID",
    "add_response_headers",
    "default_request_id_generator",
    "default_request_id_validator",
    "escape_for_log",
    "get_request_id",
    "reset_request_id",
    "set_request_id",
]

_request_id: ContextVar[str | None] = ContextVar("fastkit_request_id", default=None)

# Where the middleware leaves the id and header name in ``scope["state"]``, so that code
# outside the middleware's context (Starlette's outermost error middleware) can read them.
STATE_ID = "fastkit.request_id"
STATE_HEADER = "fastkit.request_id_header"

# Headers that code deep in the app (a dependency) wants on the response, whatever the route
# answers: a dict that `ObservabilityMiddleware` puts in the scope and sends at the start.
RESPONSE_HEADERS = "fastkit.response_headers"

_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# Characters that end or rewrite a log line on some reader: C0 controls (newline, carriage
# return, escape...), DEL, C1 controls (NEL...), the Unicode line and paragraph separators,
# and the bidirectional controls (U+202E shows "/nimda" as "/admin"); and the backslash, so
# that a literal "\x0a" in a request cannot pass for an escaped newline.
_LOG_ESCAPES = (
    {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    | {
        code: f"\\u{code:04x}"
        for code in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F))
    }
    | {code: f"\\u{code:04x}" for code in range(0x2066, 0x206A)}
    | {ord("\\"): "\\\\"}
)


def escape_for_log(text: str) -> str:
    """``text`` from a request (a path, a header, a user name) made safe for one log line.

    Control characters become ``\\xNN`` escapes (``\\uNNNN`` for the Unicode line
    separators and bidirectional controls) and a backslash is doubled:
    ``GET /a%0aINFO forged`` is logged as ``/a\\x0aINFO forged``, one line whatever the
    request sent, and no escape can be faked. Everything else is left as it is. fastkit
    escapes what it logs of a request; use it for your own log lines too.

    Example:
        ```python
        logger.info("Search for %s", escape_for_log(request.query_params.get("q", "")))
        ```
    """
    if text.isascii() and text.isprintable() and "\\" not in text:  # the usual case
        return text
    return text.translate(_LOG_ESCAPES)


def get_request_id() -> str | None:
    """The current request's id, or None outside a request handled by `RequestIDMiddleware`.

    Example:
        ```python
        @app.get("/whoami")
        async def whoami() -> dict[str, str | None]:
            return {"request_id": get_request_id()}
        ```
    """
    return _request_id.get()


def set_request_id(scope: Scope, request_id: str, header: str) -> Token[str | None]:
    """Publish ``request_id`` for the request of ``scope`` (context and ``scope["state"]``).

    ``header`` is the header name that carries it, for answers sent outside the context.
    Call `reset_request_id` with the returned token when the request ends.
    """
    state = scope.setdefault("state", {})
    state[STATE_ID] = request_id
    state[STATE_HEADER] = header
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    """Restore the id that was current before the `set_request_id` call of ``token``."""
    _request_id.reset(token)


def default_request_id_validator(value: str) -> bool:
    """Accept 1-128 characters of ``[A-Za-z0-9._-]`` (a uuid, a ULID, a trace id...)."""
    return _VALID_ID.fullmatch(value) is not None


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def default_request_id_generator() -> str:
    """A new random id: a version-4 UUID as 32 lowercase hex characters.

    Request ids must be unique, not secret: the bits come from the ``random`` module
    (reseeded in forked workers), which is several times cheaper per request than
    ``uuid.uuid4()`` and its ``os.urandom`` call. They are predictable, so never use them
    as tokens or idempotency keys; pass ``generator=lambda: uuid.uuid4().hex`` if you must.
    """
    bits = (random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET
    return "%032x" % bits  # noqa: UP031 -- measurably cheaper than an f-string here


def add_response_headers(scope: Scope, headers: Mapping[str, str]) -> bool:
    """Have ``headers`` sent on this request's response, whatever the route answers.

    `ObservabilityMiddleware` (which `fastkit.setup` installs) sends them on the response
    start, on success and error answers alike, and on a ``Response`` a route returns
    itself. A header given twice is sent once, its values joined with ``", "`` (a list).

    Returns:
        False if no such layer runs for this request: then put the headers on FastAPI's
        ``Response`` parameter (and `fastkit.errors.add_error_headers`) instead.
    """
    pending = scope.get(RESPONSE_HEADERS)
    if pending is None:
        return False
    for name, value in headers.items():
        key = name if name.islower() else name.lower()
        pending[key] = f"{pending[key]}, {value}" if key in pending else value
    return True
