"""Serve Swagger UI and ReDoc from this app instead of a CDN (``/docs`` behind a firewall).

FastAPI's ``/docs`` and ``/redoc`` pages load their scripts and styles from jsDelivr and
their fonts from Google: on a network without the internet they stay blank. With the
``offline-docs`` extra (``pip install "fastkit-fastapi[offline-docs]"``, which brings the
``fastapi-offline`` package and the files it ships), `serve_docs_locally` serves those
files from the app itself and points the docs pages at them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fastkit._compat import require

__all__ = ["DOCS_ASSETS_PATH", "serve_docs_locally"]

DOCS_ASSETS_PATH = "/docs-assets"
"""Where `serve_docs_locally` serves the files by default."""

_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def _assets_directory() -> Path:
    module = require("fastapi_offline", "offline-docs")
    directory = Path(module.__file__ or "").parent / "static"
    missing = [name for name in _FILES if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(
            f"fastapi-offline at {directory} lacks {', '.join(missing)}; reinstall it with "
            'pip install --force-reinstall "fastkit-fastapi[offline-docs]".'
        )
    return directory


def serve_docs_locally(app: FastAPI, *, path: str = DOCS_ASSETS_PATH) -> FastAPI:
    """Serve the Swagger UI and ReDoc files from ``app`` and point its docs pages at them.

    The pages keep their paths (``app.docs_url``, ``app.redoc_url`` and the OAuth2
    redirect) and their settings (title, ``swagger_ui_parameters``, ``swagger_ui_init_oauth``,
    ``root_path``); only where their files come from changes. Call it once, before the app
    serves; it works with `fastkit.setup` in either order, and the docs pages' security
    policy already allows the app's own files.

    Args:
        app: The application.
        path: Where to serve the files.

    Returns:
        The same ``app``.

    Raises:
        MissingDependencyError: Without the ``offline-docs`` extra.
        ValueError: If ``path`` is not an absolute path, or the app has no docs pages.

    Example:
        ```python
        from fastkit.docs_assets import serve_docs_locally

        app = serve_docs_locally(FastAPI())  # /docs and /redoc work offline
        ```
    """
    if not path.startswith("/") or path == "/" or path.endswith("/"):
        raise ValueError(f"path must look like '/docs-assets', got {path!r}.")
    if app.docs_url is None and app.redoc_url is None:
        raise ValueError("The app has no docs pages (docs_url and redoc_url are None).")
    directory = _assets_directory()
    pages = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    routes = [route for route in app.router.routes if not _is_page(route, pages)]
    ours: list[BaseRoute] = [Mount(path, StaticFiles(directory=directory), name="fastkit-docs")]

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '').rstrip('/')}{path}/{name}"

    if app.docs_url is not None:
        oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

        async def swagger_ui(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "").rstrip("/")
            redirect = f"{root}{oauth2_redirect_url}" if oauth2_redirect_url else None
            return get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=asset(request, "swagger-ui-bundle.js"),
                swagger_css_url=asset(request, "swagger-ui.css"),
                swagger_favicon_url=asset(request, "favicon.png"),
                oauth2_redirect_url=redirect,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )

        ours.append(Route(app.docs_url, swagger_ui, include_in_schema=False))
        if oauth2_redirect_url:

            async def oauth2_redirect(request: Request) -> HTMLResponse:
                return get_swagger_ui_oauth2_redirect_html()

            ours.append(Route(oauth2_redirect_url, oauth2_redirect, include_in_schema=False))
    if app.redoc_url is not None:

        async def redoc(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "").rstrip("/")
            return get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=asset(request, "redoc.standalone.js"),
                redoc_favicon_url=asset(request, "favicon.png"),
                with_google_fonts=False,
            )

        ours.append(Route(app.redoc_url, redoc, include_in_schema=False))
    # First, where FastAPI put its own pages: a mount at "/" (a single-page app) added
    # earlier must not shadow them.
    app.router.routes[:] = [*ours, *routes]
    return app


def _is_page(route: BaseRoute, pages: set[str | None]) -> bool:
    return isinstance(route, Route) and route.path in pages
