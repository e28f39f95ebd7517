"""One structured log record per request."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.request_context import get_request_id

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
        logger.handle(record)


_MESSAGE = "%s %s %d %.2fms"
# When the logging module started, in seconds, derived from a real record: the private
# ``logging._startTime`` changed units across Python versions.
_probe = logging.LogRecord("fastkit", logging.INFO, __file__, 0, "", (), None)
_LOGGING_START = _probe.created - _probe.relativeCreated / 1000
del _probe
_PATHNAME = __file__
_FILENAME = os.path.basename(__file__)
_CLIENT_TEXT: dict[object, str] = {}


def _client_text(client: Sequence[object]) -> str:
    """``"host:port"`` for a scope's ``client``, remembered for hashable ones (bounded)."""
    text = f"{client[0]}:{client[1]}"
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
            "module": "access_log",
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
