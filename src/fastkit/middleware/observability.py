"""One observability layer: request id, access log and timing with one ``send`` wrapper.

`ObservabilityMiddleware` gives every request an id, logs one record per request and
times it, with one wrapper around ``send`` and one clock read instead of one per concern;
on a small endpoint that is a measurable share of the request (``bench/middleware.py``).
`fastkit.setup` installs it. `RequestIDMiddleware`, `AccessLogMiddleware` and
`TimingMiddleware` are this class with one concern turned on.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit._compat import require
from fastkit.caching import CachingMiddleware
from fastkit.errors import UnhandledErrorMiddleware
from fastkit.middleware.body_limit import BodyLimitMiddleware
from fastkit.middleware.security_headers import SecurityHeadersMiddleware
from fastkit.request_context import (
    RESPONSE_HEADERS,
    default_request_id_generator,
    default_request_id_validator,
    escape_for_log,
    get_request_id,
    reset_request_id,
    set_request_id,
)

__all__ = ["ObservabilityMiddleware"]

# Between this layer and the error responder, these change nothing the responder answers:
# they let exceptions pass unchanged and add headers to no error answer.
_PASS_ERRORS_THROUGH: tuple[type, ...] = (BodyLimitMiddleware, CachingMiddleware)
_FROM_CONTEXT = object()  # default for log(request_id=...): read get_request_id()
if TYPE_CHECKING:
    from fastkit.metrics import HTTPMetrics

_OURS, _SECURITY, _CONTENT_TYPE = 1, 2, 3  # what a response header is to this layer


class ObservabilityMiddleware:
    """Request id, access log and timing for every request, as one pure ASGI layer.

    The same behaviour as `RequestIDMiddleware`, `AccessLogMiddleware` and
    `TimingMiddleware` stacked in that order (outermost first), at the cost of one:

    - **request id** (HTTP and websocket): a valid incoming ``request_id_header`` (by
      ``request_id_validator``) is kept, anything else replaced by ``request_id_generator()``;
      the id is echoed on the response, published to `get_request_id()` and
      ``scope["state"]`` for the whole request, and put on the access record.
    - **access log** (HTTP): one record per request on ``logger``, emitted when the app
      returns (see `AccessLogMiddleware` for its fields and levels).
    - **timing** (HTTP): ``timing_header`` (seconds) and ``Server-Timing: app;dur=...``
      (milliseconds) on ``http.response.start``.

    When it wraps `UnhandledErrorMiddleware` directly (what `fastkit.setup` builds), it
    answers unhandled exceptions itself through `UnhandledErrorMiddleware.answer`, saving a
    layer on every request. Lifespan scopes pass through untouched.

    Args:
        app: The ASGI app to wrap.
        request_id: Give every request an id.
        access_log: Log one record per request.
        timing: Send the timing headers.
        request_id_header: The request and response header that carries the id.
        request_id_generator: Makes a new id.
        request_id_validator: Decides whether an incoming id is kept.
        logger: The access logger or its name.
        timing_header: The header for the elapsed seconds; None for ``Server-Timing`` only.
        server_timing: Also send ``Server-Timing``.
        metrics: Count and time every request in these `fastkit.metrics.HTTPMetrics`
            (what `setup` passes with ``metrics=True``).
        tracing: Put the request id on the current OpenTelemetry span as
            ``fastkit.request_id`` (what `setup` passes with ``tracing=True``).

    Raises:
        ValueError: If ``request_id_header`` is empty, or ``timing`` has no header to send.

    Example:
        ```python
        app.add_middleware(ObservabilityMiddleware, timing=False)
        ```
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id: bool = True,
        access_log: bool = True,
        timing: bool = True,
        request_id_header: str = "X-Request-ID",
        request_id_generator: Callable[[], str] = default_request_id_generator,
        request_id_validator: Callable[[str], bool] = default_request_id_validator,
        logger: str | logging.Logger = "fastkit.access",
        timing_header: str | None = "X-Process-Time",
        server_timing: bool = True,
        metrics: HTTPMetrics | None = None,
        tracing: bool = False,
    ) -> None:
        if request_id and (not request_id_header or not request_id_header.strip()):
            raise ValueError(
                "request_id_header must be a non-empty header name, e.g. 'X-Request-ID'."
            )
        if timing and not timing_header and not server_timing:
            raise ValueError("timing has nothing to send; set timing_header or server_timing.")
        # With nothing configured between them (what setup() builds), the error responder
        # that install_exception_handlers put innermost is our direct child: absorb it and
        # answer unhandled exceptions here, with the same send, saving a layer per request.
        # Exactly fastkit's responder: a subclass may answer differently, and keeps its layer.
        # fastkit's security headers right inside: added here, in the send wrapper this layer
        # has anyway, rather than by a layer of their own (docs pages still go through it).
        self.security: SecurityHeadersMiddleware | None = None
        if type(app) is SecurityHeadersMiddleware:
            self.security = app
            app = app.app
        # And the body limit: a request without a body skips its layer (nothing to count).
        self.body_limit: BodyLimitMiddleware | None = None
        if type(app) is BodyLimitMiddleware:
            self.body_limit = app
        # Layers that let every exception but their own pass unchanged and add no headers
        # (the body limit) may stand between: the responder is taken out from under them.
        self.answers_errors = False
        parent: Any = None
        child: Any = app
        while type(child) in _PASS_ERRORS_THROUGH:
            parent, child = child, child.app
        if type(child) is UnhandledErrorMiddleware:
            self.answers_errors = True
            if parent is None:
                app = child.app
            else:
                parent.app = child.app
            if self.security is not None and self.security.app is child:
                self.security.app = child.app  # docs pages: errors answered here as well
        self.app = app
        self.request_id = request_id
        self.access_log = access_log
        self.timing = timing
        self.metrics = metrics
        self._current_span = _current_span() if tracing and request_id else None
        self.request_id_header = request_id_header
        self.generator = request_id_generator
        self.validator = request_id_validator
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
        self.timing_header = timing_header
        self.server_timing = timing and server_timing
        self._id_key = request_id_header.lower().encode("latin-1") if request_id else b""
        self._time_key = (
            timing_header.lower().encode("latin-1") if timing and timing_header else b""
        )
        own = [key for key in (self._id_key, self._time_key) if key]
        self._own_keys = frozenset(own)
        # What each response header name means here, looked up once per name: ours (the
        # app set one: replace it), one of the security headers (the app's wins), or the
        # content type (HTML gets its own policy). Names the app sends are cached as they
        # come (bounded): one dict lookup per header, whatever its case.
        kinds: dict[bytes, int] = dict.fromkeys(own, _OURS)
        if self.security is not None:
            kinds.update(dict.fromkeys(self.security.header_names, _SECURITY))
            kinds[b"content-type"] = _CONTENT_TYPE
        self._known_kinds = dict(kinds)  # lowercase names only
        self._kinds = kinds
        # Only the access log is on: with a logger that keeps not even ERROR records, there
        # is nothing to do (checked per request: logging can be configured later).
        self._log_only = access_log and not (
            request_id or timing or self.answers_errors or self.security or metrics
        )

    def _incoming(self, scope: Scope) -> str | None:
        wanted = self._id_key
        for key, value in scope["headers"]:
            if key == wanted:
                return self._valid(value)
        return None

    def _valid(self, value: bytes) -> str | None:
        """The incoming id ``value`` if it is one to keep."""
        try:
            candidate = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        return candidate if self.validator(candidate) else None

    def _kind(self, name: bytes) -> int:
        """What response header ``name`` (any case) is to this layer; see ``_kinds``."""
        kind = self._known_kinds.get(name.lower(), 0)
        if len(self._kinds) < 512:  # names come from the app, not the client: few
            self._kinds[name] = kind
        return kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket" and self.request_id:
                await self._websocket(scope, receive, send)
            elif kind == "lifespan" and self.metrics is not None:
                await self.app(scope, receive, _release_gauges_at_shutdown(send))
            else:
                await self.app(scope, receive, send)
            return
        if self._log_only and not self.logger.isEnabledFor(logging.ERROR):
            await self.app(scope, receive, send)
            return

        app, security = self.app, self.security
        body_limit = self.body_limit
        request_id = token = None
        if body_limit is not None or self.request_id:
            # One pass over the request headers: the incoming id (the first one counts)
            # and whether a body may follow (RFC 9112 6.3: HTTP/1 without Content-Length
            # or Transfer-Encoding has none, most GETs; HTTP/2 and 3 frame bodies anyway).
            wanted = self._id_key
            incoming = None
            framed = scope.get("http_version") not in ("1.1", "1.0")
            for key, value in scope["headers"]:
                if key == wanted:
                    if incoming is None:
                        incoming = value
                elif key == b"content-length" or key == b"transfer-encoding":
                    framed = True
            if body_limit is not None and not framed:
                app = body_limit.app  # nothing to count (read each time: see __init__)
            if self.request_id:
                request_id = (incoming is not None and self._valid(incoming)) or self.generator()
                token = set_request_id(scope, request_id, self.request_id_header)
                if self._current_span is not None:
                    self._current_span().set_attribute("fastkit.request_id", request_id)
        metrics = self.metrics
        if security is not None and security.is_docs(scope):
            app, security = security, None  # the layer itself: it hashes the page's scripts
        pending: dict[str, str] = {}  # add_response_headers() from deeper down
        scope[RESPONSE_HEADERS] = pending
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
                if type(headers) is not list:
                    headers = message["headers"] = list(headers or ())
                # One pass over the app's headers, for this layer and the security headers.
                replace = app_set_security = is_html = False
                kinds = self._kinds
                for name, value in headers:
                    what = kinds.get(name)
                    if what is None:
                        what = self._kind(name)
                    if what:
                        if what == _OURS:
                            replace = True
                        elif what == _SECURITY:
                            app_set_security = True
                        elif value[:9].lower() == b"text/html":
                            is_html = True
                if replace:
                    headers = self._own_headers_removed(message)
                # Inlined rather than a helper: this runs on every response.
                if request_id is not None:
                    headers.append((self._id_key, request_id.encode("latin-1")))
                if self._time_key:
                    headers.append((self._time_key, b"%.6f" % elapsed))
                if self.server_timing:
                    # Appended: Server-Timing may carry other metrics already.
                    headers.append((b"server-timing", b"app;dur=%.3f" % (elapsed * 1000)))
                if pending:
                    for name, value in pending.items():
                        headers.append((name.encode("latin-1"), value.encode("latin-1")))
                if security is not None:
                    security.extend_headers(
                        scope, headers, is_html=is_html, app_set_ours=app_set_security
                    )
            await send(message)
            if kind == "http.response.body" and not message.get("more_body"):
                end = time.perf_counter()

        if metrics is not None:
            method = metrics.method(scope)
            metrics.started(method)
        try:
            await app(scope, receive, send_observed)
        except Exception as exc:
            if self.answers_errors:
                await UnhandledErrorMiddleware.answer(
                    scope, receive, send_observed, exc, response_started=status != 0
                )
            raise
        finally:
            if metrics is not None:
                try:
                    metrics.finished(
                        scope, method, status or 500, (end or time.perf_counter()) - start
                    )
                except Exception:  # a metrics file that cannot be written must not cost the log
                    self.logger.exception("Recording the request's metrics failed")
            if self.access_log:
                duration = ((end or time.perf_counter()) - start) * 1000
                # An app that raised before responding: the client got (or gets) a 500.
                self.log(
                    scope,
                    status or 500,
                    duration,
                    request_id if request_id is not None else _FROM_CONTEXT,
                )
            if token is not None:
                reset_request_id(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = self._incoming(scope) or self.generator()
        token = set_request_id(scope, request_id, self.request_id_header)
        if self._current_span is not None:
            self._current_span().set_attribute("fastkit.request_id", request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_request_id(token)

    def _own_headers_removed(self, message: Message) -> list[tuple[bytes, bytes]]:
        """The message's headers as a list without ours (the app set one: replace it)."""
        keys = self._own_keys
        headers = [h for h in message.get("headers") or () if h[0].lower() not in keys]
        message["headers"] = headers
        return headers

    def log(
        self,
        scope: Scope,
        status: int,
        duration_ms: float,
        request_id: object = _FROM_CONTEXT,
    ) -> None:
        """Emit the record for one finished HTTP request (id from the context by default)."""
        level = logging.ERROR if status >= 500 else logging.INFO
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        if request_id is _FROM_CONTEXT:
            request_id = get_request_id()
        client = scope.get("client")
        # One request, one line: control characters in the path are escaped (%0a...).
        method = scope["method"]
        if method not in _METHODS:
            method = escape_for_log(method)
        path = escape_for_log(scope["path"])
        args = (method, path, status, duration_ms)
        client_text = None
        if client:
            try:  # one per connection: remembered rather than formatted for every request
                client_text = _CLIENT_TEXT[client]
            except (KeyError, TypeError):
                client_text = _client_text(client)
        duration = int(duration_ms * 1000 + 0.5) / 1000  # 3 decimals; cheaper than round()
        if logging.getLogRecordFactory() is not logging.LogRecord:
            # A custom record factory (e.g. one that adds fields) is respected.
            fields = {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration,
                "request_id": request_id,
                "client": client_text,
            }
            logger.handle(
                logger.makeRecord(
                    logger.name, level, __file__, 0, _MESSAGE, args, None, "access_log", fields
                )
            )
            return
        # The standard LogRecord, built without ``LogRecord.__init__``: that derives the
        # caller's file and module and looks up process and thread names for every record;
        # for one record per request those lookups are a large part of the middleware's
        # cost, and the caller is always this module anyway. Same attributes, one dict.
        record = logging.LogRecord.__new__(logging.LogRecord)
        now = time.time()
        thread = threading.current_thread()
        # Copying a dict of the attributes that are the same for every record of this
        # process, then setting the rest, is cheaper than building all 27 entries.
        record.__dict__ = attrs = (_template or _process_template()).copy()
        attrs["name"] = logger.name
        attrs["args"] = args
        attrs["levelno"] = level
        if level != logging.INFO:
            attrs["levelname"] = logging.getLevelName(level)
        attrs["created"] = now
        attrs["msecs"] = (now - int(now)) * 1000
        attrs["relativeCreated"] = (now - _LOGGING_START) * 1000
        attrs["thread"] = thread.ident
        attrs["threadName"] = thread.name
        attrs["method"] = method
        attrs["path"] = path
        attrs["status"] = status
        attrs["duration_ms"] = duration
        attrs["request_id"] = request_id
        attrs["client"] = client_text
        if logger.filters or logger.disabled:
            logger.handle(record)
        else:  # what Logger.handle does with no filters, one call less
            logger.callHandlers(record)


_MESSAGE = "%s %s %d %.2fms"
# When the logging module started, in seconds, derived from a real record: the private
# ``logging._startTime`` changed units across Python versions.
_probe = logging.LogRecord("fastkit", logging.INFO, __file__, 0, "", (), None)
_LOGGING_START = _probe.created - _probe.relativeCreated / 1000
del _probe
_PATHNAME = __file__
_FILENAME = os.path.basename(__file__)
_CLIENT_TEXT: dict[object, str] = {}
_METHODS = frozenset(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])


def _client_text(client: Sequence[object]) -> str:
    """``"host:port"`` for a scope's ``client``, remembered for hashable ones (bounded)."""
    text = escape_for_log(f"{client[0]}:{client[1]}")  # a proxy header may have set it
    try:
        if len(_CLIENT_TEXT) >= 1024:
            _CLIENT_TEXT.clear()
        _CLIENT_TEXT[client] = text
    except TypeError:  # a list: fine, just not remembered
        pass
    return text


# Every attribute LogRecord.__init__ sets, in its order, then ours, with the values that
# are the same for every record of this process; the others are set per record.
_template: dict[str, object] = {}


def _process_template() -> dict[str, object]:
    """Fill ``_template`` (again after a fork: a worker has its own pid and name)."""
    # As LogRecord does: only ask multiprocessing if the app already imported it.
    process_name: str | None = "MainProcess"
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        try:
            process_name = str(multiprocessing.current_process().name)
        except Exception:
            process_name = None
    _template.update(
        {
            "name": "",
            "msg": _MESSAGE,
            "args": (),
            "levelname": "INFO",
            "levelno": logging.INFO,
            "pathname": _PATHNAME,
            "filename": _FILENAME,
            "module": "observability",
            "exc_info": None,
            "exc_text": None,
            "stack_info": None,
            "lineno": 0,
            "funcName": "access_log",
            "created": 0.0,
            "msecs": 0.0,
            "relativeCreated": 0.0,
            "thread": None,
            "threadName": None,
            "processName": process_name,
            "process": os.getpid(),
            "taskName": None,
            "method": None,
            "path": None,
            "status": None,
            "duration_ms": None,
            "request_id": None,
            "client": None,
        }
    )
    return _template


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_template.clear)


def _current_span() -> Callable[[], Any]:
    """OpenTelemetry's ``get_current_span`` (the ``otel`` extra)."""
    trace = require("opentelemetry.trace", "otel")
    get_current_span: Callable[[], Any] = trace.get_current_span
    return get_current_span


def _release_gauges_at_shutdown(send: Send) -> Send:
    """The lifespan's send; at shutdown, multiprocess metrics forget this worker's live
    gauges (`fastkit.metrics.mark_process_dead`)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            from fastkit.metrics import mark_process_dead

            mark_process_dead()
        await send(message)

    return wrapped
