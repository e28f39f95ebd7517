"""CORS with its configuration checked before it can silently misbehave."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware

__all__ = [
    "DEFAULT_CORS_METHODS",
    "DEFAULT_EXPOSE_HEADERS",
    "add_cors",
    "cors_options",
    "validate_origins",
]

DEFAULT_CORS_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# The rate-limit fields and Retry-After too: a browser app can then pace itself and read when
# to retry a 429 (none of them is CORS-safelisted).
# Not X-Process-Time: how long the server took tells a cross-origin script more than it
# needs (timing side channels); add it to expose_headers if your front end wants it.
DEFAULT_EXPOSE_HEADERS: tuple[str, ...] = (
    "X-Request-ID",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def _as_list(name: str, value: Sequence[str] | str) -> list[str]:
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of strings, not a string; write [{value!r}].")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must contain strings only, got {item!r}.")
    return items


def validate_origins(origins: Sequence[str], *, allow_credentials: bool = False) -> list[str]:
    """Check CORS origins and return them as a list.

    An origin is ``scheme://host[:port]`` with scheme http or https and nothing after it;
    ``"*"`` allows any origin but not together with credentials.

    Raises:
        TypeError: If ``origins`` is a string or contains non-strings.
        ValueError: If an origin is malformed, or ``"*"`` is used with credentials.
    """
    checked = _as_list("origins", origins)
    for origin in checked:
        if origin == "*":
            if allow_credentials:
                raise ValueError(
                    "origins=['*'] cannot be combined with allow_credentials=True; "
                    "list the exact origins instead, e.g. ['https://app.example.com']."
                )
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"CORS origin {origin!r} must start with http:// or https://, "
                "e.g. 'https://app.example.com'."
            )
        if "*" in parts.netloc:
            raise ValueError(
                f"CORS origin {origin!r} cannot contain a wildcard; use origin_regex instead, "
                r"e.g. origin_regex=r'https://[a-z0-9-]+\.example\.com'."
            )
        bare = f"{parts.scheme}://{parts.netloc}"
        if not parts.hostname or parts.username is not None or parts.password is not None:
            raise ValueError(
                f"CORS origin {origin!r} needs a host and no credentials, "
                "e.g. 'https://app.example.com'."
            )
        if origin != bare:
            raise ValueError(
                f"CORS origin {origin!r} must have no path, query or trailing slash; "
                f"write {bare!r}."
            )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(
                f"CORS origin {origin!r} has an invalid port; write e.g. 'http://localhost:3000'."
            ) from None
        # Browsers send the host in lowercase and leave out default ports: Starlette compares
        # origins literally, so any other spelling would silently never match.
        default_port = {"http": 80, "https": 443}[parts.scheme]
        canonical = f"{parts.scheme}://{parts.hostname}" + (
            "" if port in (None, default_port) else f":{port}"
        )
        if origin != canonical:
            raise ValueError(
                f"CORS origin {origin!r} never matches what browsers send; write {canonical!r}."
            )
    return checked


def cors_options(
    *,
    origins: Sequence[str],
    allow_credentials: bool = False,
    allow_methods: Sequence[str] = DEFAULT_CORS_METHODS,
    allow_headers: Sequence[str] = (),
    expose_headers: Sequence[str] = DEFAULT_EXPOSE_HEADERS,
    max_age: int = 600,
    origin_regex: str | None = None,
) -> dict[str, Any]:
    """Validate CORS settings and return ``CORSMiddleware`` keyword arguments.

    Raises:
        TypeError: If a list argument is given as a single string.
        ValueError: If a setting is invalid; the message says what to write instead.
    """
    checked_origins = validate_origins(origins, allow_credentials=allow_credentials)
    methods = [m.upper() for m in _as_list("allow_methods", allow_methods)]
    for method in methods:
        if method != "*" and not _TOKEN.fullmatch(method):
            raise ValueError(f"allow_methods has an invalid method {method!r}; write e.g. 'GET'.")
    headers = _as_list("allow_headers", allow_headers)
    exposed = _as_list("expose_headers", expose_headers)
    for header in [*headers, *exposed]:
        if header != "*" and not _TOKEN.fullmatch(header):
            raise ValueError(f"Invalid header name {header!r}; write e.g. 'Authorization'.")
    if allow_credentials and "*" in exposed:
        raise ValueError(
            "expose_headers=['*'] is ignored with credentials; list the headers, "
            "e.g. ['X-Request-ID']."
        )
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise ValueError(
            f"max_age must be a whole number of seconds >= 0, got {max_age!r}; "
            "write e.g. max_age=600."
        )
    if origin_regex is not None:
        _check_origin_regex(origin_regex, allow_credentials=allow_credentials)
    if not checked_origins and origin_regex is None:
        raise ValueError("add_cors needs origins or origin_regex; e.g. origins=['https://a.com'].")

    return {
        "allow_origins": checked_origins,
        "allow_credentials": allow_credentials,
        "allow_methods": methods,
        "allow_headers": headers,
        "expose_headers": exposed,
        "max_age": max_age,
        "allow_origin_regex": origin_regex,
    }


# Origins nobody means to allow: an origin_regex that admits one of them admits any site.
_STRANGERS = (
    "https://fastkit-cors-probe.invalid",
    "http://fastkit-cors-probe.invalid",
    "https://fastkit-cors-probe.invalid:8443",
    "null",
)
_EXAMPLE_REGEX = r"write e.g. r'https://[a-z0-9-]+\.example\.com'."


def _check_origin_regex(origin_regex: str, *, allow_credentials: bool) -> None:
    try:
        pattern = re.compile(origin_regex)
    except re.error as exc:
        raise ValueError(
            f"origin_regex is not a valid regular expression ({exc}); {_EXAMPLE_REGEX}"
        ) from None
    admitted = [origin for origin in _STRANGERS if pattern.fullmatch(origin)]
    if admitted and allow_credentials:
        raise ValueError(
            f"origin_regex {origin_regex!r} admits any origin ({admitted[0]!r} too), and with "
            "allow_credentials=True any site could read your users' answers; " + _EXAMPLE_REGEX
        )
    dot = _unescaped_dot(origin_regex)
    if dot is not None:
        warnings.warn(
            f"origin_regex {origin_regex!r} has an unescaped '.' at {dot}, which matches any "
            "character ('appXexample.com' too); write '\\.' for a literal dot.",
            UserWarning,
            stacklevel=4,
        )


def _unescaped_dot(regex: str) -> int | None:
    """Where ``regex`` has a ``.`` that matches one character of a host name by mistake:
    unescaped, outside a character class, and not repeated (``.*`` and ``.+`` are meant)."""
    escaped = in_class = False
    for at, char in enumerate(regex):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "." and regex[at + 1 : at + 2] not in ("*", "+", "?", "{"):
            return at
    return None


def add_cors(
    app: Starlette,
    *,
    origins: Sequence[str],
    allow_credentials: bool = False,
    allow_methods: Sequence[str] = DEFAULT_CORS_METHODS,
    allow_headers: Sequence[str] = (),
    expose_headers: Sequence[str] = DEFAULT_EXPOSE_HEADERS,
    max_age: int = 600,
    origin_regex: str | None = None,
) -> None:
    """Validate CORS settings, then install Starlette's ``CORSMiddleware`` on ``app``.

    Mistakes that browsers punish silently are refused here instead: ``"*"`` together with
    credentials, an origin with a path or trailing slash, a non-http(s) scheme, a bad
    method name or regex. ``X-Request-ID`` and ``X-Process-Time`` are exposed to scripts
    by default. With `install_exception_handlers`, error responses (500 included) carry
    the CORS headers too.

    Args:
        app: A FastAPI or Starlette application.
        origins: Allowed origins, e.g. ``["https://app.example.com"]``, or ``["*"]``.
        allow_credentials: Allow cookies and ``Authorization`` on cross-origin requests.
        allow_methods: Allowed methods, or ``["*"]``.
        allow_headers: Request headers allowed beyond the CORS-safelisted ones, or ``["*"]``.
        expose_headers: Response headers scripts may read.
        max_age: Seconds browsers may cache a preflight answer.
        origin_regex: A regex that allowed origins must match in full, in addition to
            ``origins``.

    Raises:
        TypeError: If a list argument is given as a single string.
        ValueError: If a setting is invalid; the message says what to write instead.

    Example:
        ```python
        add_cors(app, origins=["https://app.example.com"], allow_credentials=True)
        ```
    """
    options = cors_options(
        origins=origins,
        allow_credentials=allow_credentials,
        allow_methods=allow_methods,
        allow_headers=allow_headers,
        expose_headers=expose_headers,
        max_age=max_age,
        origin_regex=origin_regex,
    )
    app.add_middleware(CORSMiddleware, **options)
