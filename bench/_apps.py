"""The apps that the middleware benchmarks compare: one ``GET /item`` route each.

Every factory returns a fresh ``FastAPI()`` with the same endpoint, so the only difference
between two apps is the middleware on top. ``middleware_e2e.py`` serves ``bare`` and
``with_setup`` through uvicorn's ``--factory``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request, Response

import fastkit
from fastkit.middleware import RequestIDMiddleware, TimingMiddleware

__all__ = [
    "ITEM",
    "DiscardHandler",
    "bare",
    "correlation_id",
    "quiet_access_log",
    "request_id",
    "seed_timing",
    "timing",
    "with_setup",
]

ITEM = {"id": 1, "name": "widget", "price": 9.99, "in_stock": True}


class DiscardHandler(logging.Handler):
    """A handler that takes every record and writes nothing.

    Unlike ``logging.NullHandler`` (whose ``handle`` returns at once), records go through
    ``Handler.handle`` — filters, lock, ``emit`` — as with a real handler, minus the I/O.
    """

    def emit(self, record: logging.LogRecord) -> None:
        pass


def quiet_access_log() -> logging.Logger:
    """Enable ``fastkit.access`` at INFO with a discarding handler, so records are made."""
    logger = logging.getLogger("fastkit.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.disabled = False
    if not any(isinstance(h, DiscardHandler) for h in logger.handlers):
        logger.addHandler(DiscardHandler(logging.INFO))
    return logger


def _new_app() -> FastAPI:
    app = FastAPI()

    # No return annotation on purpose: FastAPI would then validate and serialize through
    # a response model, which makes the endpoint dearer and hides middleware overhead.
    @app.get("/item")
    async def item():  # type: ignore[no-untyped-def]
        return {"id": 1, "name": "widget", "price": 9.99, "in_stock": True}

    return app


def bare() -> FastAPI:
    """FastAPI with no middleware: the baseline."""
    return _new_app()


def with_setup() -> FastAPI:
    """``fastkit.setup(app)`` with its defaults: errors, request id, timing, access log."""
    quiet_access_log()
    return fastkit.setup(_new_app())


def with_setup_no_access_log() -> FastAPI:
    """``fastkit.setup(app, access_log=False)``: what the access log record costs."""
    return fastkit.setup(_new_app(), access_log=False)


def seed_timing() -> FastAPI:
    """The timing middleware as the seed app wrote it: ``@app.middleware("http")``."""
    app = _new_app()

    @app.middleware("http")
    async def add_process_time_header(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.time()
        response = await call_next(request)
        response.headers["X-Process-Time"] = str(time.time() - start)
        return response

    return app


def correlation_id() -> FastAPI:
    """asgi-correlation-id's ``CorrelationIdMiddleware`` alone."""
    app = _new_app()
    app.add_middleware(CorrelationIdMiddleware)
    return app


def request_id() -> FastAPI:
    """fastkit's ``RequestIDMiddleware`` alone."""
    app = _new_app()
    app.add_middleware(RequestIDMiddleware)
    return app


def timing() -> FastAPI:
    """fastkit's ``TimingMiddleware`` alone."""
    app = _new_app()
    app.add_middleware(TimingMiddleware)
    return app
