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

    def log(self, scope: Scope, status: int, duration_ms: float) -> None:
        """Emit the record for one finished HTTP request."""
        level = logging.ERROR if status >= 500 else logging.INFO
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        client = scope.get("client")
        method, path = scope["method"], scope["path"]
        args = (method, path, status, duration_ms)
        if logging.getLogRecordFactory() is logging.LogRecord:
            record = _access_record(logger.name, level, args)
        else:  # a custom record factory (e.g. one that adds fields) is respected
            record = logger.makeRecord(
                logger.name, level, __file__, 0, _MESSAGE, args, None, "access_log"
            )
        fields = record.__dict__
        fields["method"] = method
        fields["path"] = path
        fields["status"] = status
        fields["duration_ms"] = round(duration_ms, 3)
        fields["request_id"] = get_request_id()
        fields["client"] = f"{client[0]}:{client[1]}" if client else None
        logger.handle(record)


_MESSAGE = "%s %s %d %.2fms"
# When the logging module started, in seconds, derived from a real record: the private
# ``logging._startTime`` changed units across Python versions.
_probe = logging.LogRecord("fastkit", logging.INFO, __file__, 0, "", (), None)
_LOGGING_START = _probe.created - _probe.relativeCreated / 1000
del _probe
_FIXED = {
    "msg": _MESSAGE,
    "pathname": __file__,
    "filename": os.path.basename(__file__),
    "module": "access_log",
    "lineno": 0,
    "funcName": "access_log",
    "exc_info": None,
    "exc_text": None,
    "stack_info": None,
    "taskName": None,
}


def _access_record(name: str, level: int, args: tuple[object, ...]) -> logging.LogRecord:
    """A ``LogRecord`` with the standard attributes, built without ``LogRecord.__init__``.

    ``__init__`` derives the caller's file and module and looks up process and thread
    names for every record; for one record per request those lookups are a large part of
    the middleware's cost, and the caller is always this module anyway.
    """
    record = logging.LogRecord.__new__(logging.LogRecord)
    now = time.time()
    attributes = record.__dict__
    attributes.update(_FIXED)
    attributes["name"] = name
    attributes["levelno"] = level
    attributes["levelname"] = _LEVEL_NAMES.get(level) or logging.getLevelName(level)
    attributes["args"] = args
    attributes["created"] = now
    attributes["msecs"] = (now - int(now)) * 1000
    attributes["relativeCreated"] = (now - _LOGGING_START) * 1000
    thread = threading.current_thread()
    attributes["thread"] = thread.ident
    attributes["threadName"] = thread.name
    attributes["process"], attributes["processName"] = _process()
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
