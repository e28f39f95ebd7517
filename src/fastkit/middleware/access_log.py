"""One structured log record per request."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.middleware.request_id import get_request_id

__all__ = ["AccessLogMiddleware"]

_FROM_CONTEXT = object()  # default for log(request_id=...): read get_request_id()


class AccessLogMiddleware:
    """Log one record per HTTP request when it completes.

    The message reads ``GET /items 200 1.52ms`` and the record carries the fields as
    attributes for structured formatters: ``method``, ``path``, ``status``,
    ``duration_ms`` (until the last byte of the response; background tasks that run after
    it are not counted), ``request_id`` (with `RequestIDMiddleware` outside it) and
    ``client`` (``"host:port"`` or None). The record is emitted when the app returns.
    Level INFO; 5xx (including an exception that escaped the app, logged as status 500)
    at ERROR. The query string is not logged: it may carry tokens.

    Args:
        app: The ASGI app to wrap.
        logger: A logger or logger name.

    Example:
        ```python
        app.add_middleware(AccessLogMiddleware)  # logger "fastkit.access"
        ```
    """

    def __init__(self, app: ASGIApp, *, logger: str | logging.Logger = "fastkit.access") -> None:
        self.app = app
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Skip the bookkeeping only when not even a 5xx (ERROR) record would be kept.
        if scope["type"] != "http" or not self.logger.isEnabledFor(logging.ERROR):
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        end = 0.0  # when the last body byte went out; background tasks run after it
        status = 500  # what the client gets if the app raises before responding

        async def send_capturing_status(message: Message) -> None:
            nonlocal status, end
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                end = time.perf_counter()

        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            self.log(scope, status, ((end or time.perf_counter()) - start) * 1000)

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
        method, path = scope["method"], scope["path"]
        args = (method, path, status, duration_ms)
        fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "request_id": request_id,
            "client": f"{client[0]}:{client[1]}" if client else None,
        }
        if logging.getLogRecordFactory() is logging.LogRecord:
            record = _access_record(logger.name, level, args, fields)
        else:  # a custom record factory (e.g. one that adds fields) is respected
            record = logger.makeRecord(
                logger.name, level, __file__, 0, _MESSAGE, args, None, "access_log", fields
            )
        logger.handle(record)


_MESSAGE = "%s %s %d %.2fms"
# When the logging module started, in seconds, derived from a real record: the private
# ``logging._startTime`` changed units across Python versions.
_probe = logging.LogRecord("fastkit", logging.INFO, __file__, 0, "", (), None)
_LOGGING_START = _probe.created - _probe.relativeCreated / 1000
del _probe
_PATHNAME = __file__
_FILENAME = os.path.basename(__file__)


def _access_record(
    name: str, level: int, args: tuple[object, ...], fields: dict[str, object]
) -> logging.LogRecord:
    """A ``LogRecord`` with the standard attributes, built without ``LogRecord.__init__``.

    ``__init__`` derives the caller's file and module and looks up process and thread
    names for every record; for one record per request those lookups are a large part of
    the middleware's cost, and the caller is always this module anyway.
    """
    record = logging.LogRecord.__new__(logging.LogRecord)
    now = time.time()
    thread = threading.current_thread()
    process, process_name = _process()
    record.__dict__ = {
        "name": name,
        "msg": _MESSAGE,
        "args": args,
        "levelname": _LEVEL_NAMES.get(level) or logging.getLevelName(level),
        "levelno": level,
        "pathname": _PATHNAME,
        "filename": _FILENAME,
        "module": "access_log",
        "exc_info": None,
        "exc_text": None,
        "stack_info": None,
        "lineno": 0,
        "funcName": "access_log",
        "created": now,
        "msecs": (now - int(now)) * 1000,
        "relativeCreated": (now - _LOGGING_START) * 1000,
        "thread": thread.ident,
        "threadName": thread.name,
        "processName": process_name,
        "process": process,
        "taskName": None,
        **fields,
    }
    return record


_LEVEL_NAMES = {logging.INFO: "INFO", logging.ERROR: "ERROR"}
_process_cache: list[tuple[int, str | None]] = []


def _process() -> tuple[int, str | None]:
    """(pid, process name) as LogRecord reports them, cached until a fork."""
    if not _process_cache:
        # As LogRecord does: only ask multiprocessing if the app already imported it.
        name: str | None = "MainProcess"
        multiprocessing = sys.modules.get("multiprocessing")
        if multiprocessing is not None:
            try:
                name = str(multiprocessing.current_process().name)
            except Exception:
                name = None
        _process_cache.append((os.getpid(), name))
    return _process_cache[0]


if hasattr(os, "register_at_fork"):  # a forked worker has its own pid (and name)
    os.register_at_fork(after_in_child=_process_cache.clear)
