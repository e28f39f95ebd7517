"""``setup(app)``: the usual handlers and middleware, in the right order, in one call."""

from __future__ import annotations

import time
from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.errors import ErrorStyle, UnhandledErrorMiddleware, install_exception_handlers
from fastkit.middleware.access_log import AccessLogMiddleware
from fastkit.middleware.cors import DEFAULT_CORS_METHODS, DEFAULT_EXPOSE_HEADERS, cors_options
from fastkit.middleware.request_id import RequestIDMiddleware
from fastkit.middleware.timing import TimingMiddleware
from fastkit.request_context import reset_request_id

__all__ = ["setup"]

_SETUP_MARK = "fastkit_setup_done"


class _ObservabilityMiddleware:
    """`RequestIDMiddleware`, `AccessLogMiddleware` and `TimingMiddleware` as one layer.

    What `setup` installs: the same behaviour as the three stacked in that order, with one
    ``send`` wrapper and one clock read instead of three; on a small endpoint that is a
    measurable share of the request (see ``bench/middleware.py``).
    """

    def __init__(
        self, app: ASGIApp, *, request_id: bool = True, access_log: bool = True, timing: bool = True
    ) -> None:
        # With nothing configured between them (the default), the error responder that
        # install_exception_handlers put innermost is our direct child: absorb it and answer
        # unhandled exceptions here, with the same send, saving a layer on every request.
        self.answers_errors = isinstance(app, UnhandledErrorMiddleware)
        if isinstance(app, UnhandledErrorMiddleware):
            app = app.app
        self.app = app
        self.request_id = RequestIDMiddleware(app) if request_id else None
        self.access_log = AccessLogMiddleware(app) if access_log else None
        self.timing = TimingMiddleware(app) if timing else None
        self._id_key = self.request_id._header_key if self.request_id is not None else b""
        self._time_key = self.timing._header_key if self.timing is not None else b""
        self._server_timing = self.timing is not None and self.timing.server_timing
        own = [key for key in (self._id_key, self._time_key) if key]
        self._own_lengths = frozenset(len(key) for key in own)
        self._own_keys = frozenset(own)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket" and self.request_id is not None:
                await self.request_id(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return

        ids = self.request_id
        request_id = token = None
        if ids is not None:
            request_id, token = ids.begin(scope)
        access_log = self.access_log
        start = time.perf_counter()
        end = 0.0  # when the last body byte went out; background tasks run after it
        status = 0  # until the response starts

        async def send_observed(message: Message) -> None:
            nonlocal status, end
            kind = message["type"]
            if kind == "http.response.start":
                elapsed = time.perf_counter() - start
                status = message["status"]
                headers = message.get("headers")
                if type(headers) is list:
                    lengths, keys = self._own_lengths, self._own_keys
                    for name, _ in headers:
                        # Length first: most names differ in length; lower() allocates.
                        if len(name) in lengths and name.lower() in keys:
                            headers = self._own_headers_removed(message)  # replace them
                            break
                else:
                    headers = self._own_headers_removed(message)
                # Inlined rather than a helper: this runs on every response.
                if request_id is not None:
                    headers.append((self._id_key, request_id.encode("latin-1")))
                if self._time_key:
                    headers.append((self._time_key, b"%.6f" % elapsed))
                if self._server_timing:
                    # Appended: Server-Timing may carry other metrics already.
                    headers.append((b"server-timing", b"app;dur=%.3f" % (elapsed * 1000)))
            await send(message)
            if kind == "http.response.body" and not message.get("more_body"):
                end = time.perf_counter()

        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            if self.answers_errors:
                await UnhandledErrorMiddleware.answer(
                    scope, receive, send_observed, exc, response_started=status != 0
                )
            raise
        finally:
            if access_log is not None:
                duration = ((end or time.perf_counter()) - start) * 1000
                # An app that raised before responding: the client got (or gets) a 500.
                access_log.log(scope, status or 500, duration, request_id)
            if token is not None:
                reset_request_id(token)

    def _own_headers_removed(self, message: Message) -> list[tuple[bytes, bytes]]:
        """The message's headers as a list without ours (the app set one: replace it)."""
        keys = self._own_keys
        headers = [h for h in message.get("headers") or () if h[0].lower() not in keys]
        message["headers"] = headers
        return headers


def _check_trusted_hosts(trusted_hosts: Sequence[str]) -> None:
    # Starlette checks patterns with ``assert`` (gone under ``python -O``, where
    # "*example.com" would then admit "evilexample.com"): refuse them here instead.
    if isinstance(trusted_hosts, str) or not trusted_hosts:
        raise ValueError("trusted_hosts must be a non-empty list, e.g. ['api.example.com'].")
    for host in trusted_hosts:
        wildcard_ok = host == "*" or (host.startswith("*.") and "*" not in host[2:])
        if not isinstance(host, str) or not host or ("*" in host and not wildcard_ok):
            raise ValueError(
                f"trusted_hosts entry {host!r} must be a host name or a pattern like "
                "'*.example.com'."
            )


def setup(
    app: FastAPI,
    *,
    errors: ErrorStyle = "envelope",
    request_id: bool = True,
    timing: bool = True,
    access_log: bool = True,
    cors_origins: Sequence[str] | None = None,
    cors_allow_credentials: bool = False,
    cors_allow_methods: Sequence[str] = DEFAULT_CORS_METHODS,
    cors_allow_headers: Sequence[str] = (),
    cors_expose_headers: Sequence[str] = DEFAULT_EXPOSE_HEADERS,
    cors_max_age: int = 600,
    cors_origin_regex: str | None = None,
    trusted_hosts: Sequence[str] | None = None,
    https_redirect: bool = False,
    gzip_min_size: int | None = None,
) -> FastAPI:
    """Install fastkit's exception handlers and middleware on ``app``.

    The middleware run in this order, outermost first, so that every log line, error and
    rejection carries the request id:

    1. request id, access log and timing (``request_id``, ``access_log``, ``timing``):
       `RequestIDMiddleware`, `AccessLogMiddleware` and `TimingMiddleware` in that order,
       installed as one layer; they see everything below, rejections included
    2. Starlette ``TrustedHostMiddleware`` (``trusted_hosts``)
    3. Starlette ``HTTPSRedirectMiddleware`` (``https_redirect``)
    4. Starlette ``CORSMiddleware`` via `add_cors` (``cors_origins``/``cors_origin_regex``)
    5. Starlette ``GZipMiddleware`` (``gzip_min_size``)
    6. the unhandled-error responder of `install_exception_handlers` (``errors``), so
       500s pass through all of the above and carry their headers.

    Middleware you add afterwards with ``app.add_middleware`` wrap outside all of these.

    Args:
        app: The application; set it up once, before it serves.
        errors: ``"envelope"`` or ``"problem"`` (RFC 9457) error bodies.
        request_id: Add `RequestIDMiddleware`.
        timing: Add `TimingMiddleware`.
        access_log: Add `AccessLogMiddleware` (logger ``fastkit.access``).
        cors_origins: Allowed CORS origins; None for no CORS.
        cors_allow_credentials: See `add_cors`.
        cors_allow_methods: See `add_cors`.
        cors_allow_headers: See `add_cors`.
        cors_expose_headers: See `add_cors`.
        cors_max_age: See `add_cors`.
        cors_origin_regex: See `add_cors`.
        trusted_hosts: Allowed ``Host`` values (``"*.example.com"`` works); None to allow any.
        https_redirect: Redirect ``http``/``ws`` requests to ``https``/``wss``.
        gzip_min_size: Compress responses of at least this many bytes; None for no gzip.

    Returns:
        The same ``app``, for chaining.

    Raises:
        RuntimeError: If ``setup`` was already called on ``app``, or the app already serves.
        ValueError: If an option is invalid (see `add_cors`).

    Example:
        ```python
        app = setup(FastAPI(), cors_origins=["https://app.example.com"])
        ```
    """
    if getattr(app.state, _SETUP_MARK, False):
        raise RuntimeError("setup() was already called on this app; call it once per app.")
    if app.middleware_stack is not None:
        raise RuntimeError("setup() must be called before the app starts serving requests.")
    if trusted_hosts is not None:
        _check_trusted_hosts(trusted_hosts)
    if gzip_min_size is not None and gzip_min_size < 0:
        raise ValueError(f"gzip_min_size must be >= 0 bytes, got {gzip_min_size}.")
    cors = None
    if cors_origins is not None or cors_origin_regex is not None:
        # Validate everything before touching the app, so a bad option leaves it unchanged.
        cors = cors_options(
            origins=cors_origins or [],
            allow_credentials=cors_allow_credentials,
            allow_methods=cors_allow_methods,
            allow_headers=cors_allow_headers,
            expose_headers=cors_expose_headers,
            max_age=cors_max_age,
            origin_regex=cors_origin_regex,
        )

    # Every add_middleware call wraps outside the previous ones: add innermost first.
    # The error responder is appended innermost by install_exception_handlers.
    install_exception_handlers(app, style=errors)
    if gzip_min_size is not None:
        app.add_middleware(GZipMiddleware, minimum_size=gzip_min_size)
    if cors is not None:
        app.add_middleware(CORSMiddleware, **cors)
    if https_redirect:
        app.add_middleware(HTTPSRedirectMiddleware)
    if trusted_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts))
    if request_id or access_log or timing:
        app.add_middleware(
            _ObservabilityMiddleware, request_id=request_id, access_log=access_log, timing=timing
        )
    setattr(app.state, _SETUP_MARK, True)
    return app
