"""``setup(app)``: the usual handlers and middleware, in the right order, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from fastkit._compat import require
from fastkit.caching import install_caching
from fastkit.errors import ErrorStyle, install_exception_handlers
from fastkit.metrics import HTTPMetrics, PrometheusMiddleware
from fastkit.middleware.body_limit import DEFAULT_MAX_BODY_SIZE, BodyLimitMiddleware, check_size
from fastkit.middleware.cors import DEFAULT_CORS_METHODS, DEFAULT_EXPOSE_HEADERS, cors_options
from fastkit.middleware.observability import ObservabilityMiddleware
from fastkit.middleware.security_headers import SecurityHeadersMiddleware
from fastkit.ratelimit import RateLimit, RateLimitMiddleware

__all__ = ["setup"]

_SETUP_MARK = "fastkit_setup_done"


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
    rate_limit: RateLimit | None = None,
    rate_limit_exempt: Sequence[str] = (),
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    security_headers: bool = True,
    hsts: bool | None = None,
    metrics: bool = False,
    metrics_registry: Any = None,
    tracing: bool = False,
    caching: bool = False,
) -> FastAPI:
    """Install fastkit's exception handlers and middleware on ``app``.

    The middleware run in this order, outermost first, so that every log line, error and
    rejection carries the request id:

    1. `ObservabilityMiddleware` (``request_id``, ``access_log``, ``timing``): what
       `RequestIDMiddleware`, `AccessLogMiddleware` and `TimingMiddleware` do, in that
       order, as one layer; it sees everything below, rejections included
    2. `SecurityHeadersMiddleware` (``security_headers``): on every answer, the 500s and
       rejections below included (`ObservabilityMiddleware` adds them itself, in its own
       wrapper, rather than as one more layer)
    3. `BodyLimitMiddleware` (``max_body_size``): counts request bodies as they are read;
       its 413s come from the error handlers, in the app's style
    4. Starlette ``TrustedHostMiddleware`` (``trusted_hosts``)
    5. Starlette ``HTTPSRedirectMiddleware`` (``https_redirect``)
    6. Starlette ``CORSMiddleware`` via `add_cors` (``cors_origins``/``cors_origin_regex``)
    7. `RateLimitMiddleware` (``rate_limit``): inside CORS, so that browsers can read its
       429s and preflight requests do not count
    8. Starlette ``GZipMiddleware`` (``gzip_min_size``)
    9. `UnhandledErrorMiddleware`, from `install_exception_handlers` (``errors``), so
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
        rate_limit: A `RateLimit` for every HTTP request, ahead of routing (a global
            budget per client); None for none. Limits per route are dependencies.
        rate_limit_exempt: Paths the global limit leaves alone (``/health``...).
        max_body_size: Bytes a request body may have (1 MiB by default; routes say
            otherwise with `BodyLimit`); None for no default limit (routes' `BodyLimit`
            still hold). Larger bodies get 413.
        security_headers: Add `SecurityHeadersMiddleware` (nosniff, Referrer-Policy,
            framing, COOP, a CSP for API answers and one that ``/docs`` works under).
        hsts: ``Strict-Transport-Security``: None sends it on https requests, True
            always, False never (see `SecurityHeadersMiddleware`).
        metrics: Count and time every request for Prometheus (the ``metrics`` extra; see
            `fastkit.metrics`), in `ObservabilityMiddleware`; serve them with
            ``app.include_router(metrics_router())``.
        metrics_registry: The prometheus-client registry for them (default: the global).
        caching: Add `fastkit.caching.CachingMiddleware`: strong ETags on GET JSON answers
            and 304s for ``If-None-Match``, and the storing end of ``ResponseCache`` and
            ``Idempotency`` dependencies (see docs/caching.md).
        tracing: Instrument the app with OpenTelemetry (the ``otel`` extra) outside every
            layer here, and put the request id on each server span as
            ``fastkit.request_id``. Configure the SDK (tracer provider, exporter) yourself.

    Returns:
        The same ``app``, for chaining.

    Raises:
        RuntimeError: If ``setup`` was already called on ``app``, or the app already serves.
        ValueError: If an option is invalid (see `add_cors`), or ``tracing`` is asked for
            without ``request_id``.
        MissingDependencyError: With ``metrics`` or ``tracing`` and their extra missing.

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
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        raise TypeError("setup(rate_limit=...) takes a RateLimit('100/second', ...).")
    if max_body_size is not None:
        check_size(max_body_size, "max_body_size")
    if gzip_min_size is not None and gzip_min_size < 0:
        raise ValueError(f"gzip_min_size must be >= 0 bytes, got {gzip_min_size}.")
    if tracing and not request_id:
        raise ValueError("tracing=True puts the request id on spans; keep request_id=True.")
    http_metrics = HTTPMetrics.get(metrics_registry) if metrics else None
    instrumentor = (
        require("opentelemetry.instrumentation.fastapi", "otel").FastAPIInstrumentor
        if tracing
        else None
    )
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
    if caching:
        # Inside gzip: the ETag is the hash of the body as the app wrote it.
        install_caching(app)
    if gzip_min_size is not None:
        app.add_middleware(GZipMiddleware, minimum_size=gzip_min_size)
    if rate_limit is not None:
        app.add_middleware(RateLimitMiddleware, limit=rate_limit, exempt=rate_limit_exempt)
    if cors is not None:
        app.add_middleware(CORSMiddleware, **cors)
    if https_redirect:
        app.add_middleware(HTTPSRedirectMiddleware)
    if trusted_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts))
    # Always: with max_body_size=None there is no default, but routes' BodyLimit still hold
    # (a request without a body skips the layer, see ObservabilityMiddleware).
    app.add_middleware(BodyLimitMiddleware, max_body_size=max_body_size)
    if security_headers:
        docs = (app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
        app.add_middleware(
            SecurityHeadersMiddleware,
            hsts=hsts,
            docs_paths=[path for path in docs if path],
        )
    if request_id or access_log or timing:
        app.add_middleware(
            ObservabilityMiddleware,
            request_id=request_id,
            access_log=access_log,
            timing=timing,
            metrics=http_metrics,
            tracing=tracing,
        )
    elif metrics:
        app.add_middleware(PrometheusMiddleware, registry=metrics_registry)
    if instrumentor is not None:
        # Outside every layer above (it wraps the whole stack): the span is current while
        # they run, so the request id goes on it and log records can name the trace.
        instrumentor.instrument_app(app, exclude_spans=["receive", "send"])
    setattr(app.state, _SETUP_MARK, True)
    return app
