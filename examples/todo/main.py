"""The todo service: ``uvicorn examples.todo.main:app`` (see the README).

``create_app(settings)`` builds an app; ``app`` is the one made from the environment.
"""

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastkit import MissingDependencyError, RequestIDLogFilter, setup
from fastkit.docs_assets import serve_docs_locally
from fastkit.health import health_router
from fastkit.routing import unique_id_from_tag

from .deps import Services
from .models import Base
from .routers import auth, todos, users
from .settings import Settings


def configure_logging(level: str) -> None:
    """Print the app's and fastkit's records; uvicorn configures only its own loggers."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIDLogFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    for name in ("todo", "fastkit"):
        logger = logging.getLogger(name)
        if not logger.handlers:  # once, even with several apps in one process
            logger.addHandler(handler)
        logger.setLevel(level.upper())


def create_app(settings: Settings | None = None) -> FastAPI:
    """A todo app for ``settings`` (default: read from the environment)."""
    settings = settings if settings is not None else Settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.log_level is not None:
            configure_logging(settings.log_level)
        services.warn_about_settings()
        try:
            # Creates the schema and missing tables: fine for a starter; use migrations
            # (Alembic) later.
            await services.create_schema()
            await services.db.create_all(Base.metadata)
            await services.create_demo_user()
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="fastkit todo example",
        description="Register, log in with **Authorize**, then manage your todos.",
        lifespan=lifespan,
        # Operation ids <tag>_<function> (todos_list_todos), for clean generated clients.
        generate_unique_id_function=unique_id_from_tag,
    )
    app.state.services = services
    # Envelope errors, request id, access log, timing; caching: ETags (304 for
    # If-None-Match) and the Idempotency-Key store of POST /todos.
    setup(app, caching=True)
    with contextlib.suppress(MissingDependencyError):  # the offline-docs extra
        serve_docs_locally(app)  # /docs and /redoc from this app, not a CDN

    app.include_router(auth.router(services))
    app.include_router(users.router(services))
    app.include_router(todos.router(services))
    # /health (readiness: the database, and Redis when REDIS_URL is set; 503 naming what
    # failed) and /health/live (liveness: touches nothing), for probes and load balancers.
    app.include_router(health_router(checks=services.health_checks(), timeout=2.0))
    return app


app = create_app()
