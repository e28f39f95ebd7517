"""Serve a built single-page app (React, Vue, Svelte...) next to an API."""

from __future__ import annotations

import os
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

__all__ = ["SPAStaticFiles"]


class SPAStaticFiles(StaticFiles):
    """Static files with a fallback to ``index.html`` for client-side routes.

    A browser navigating to ``/settings/profile`` (a route the front-end router knows,
    not a file) gets ``index.html``. Real 404s stay 404s: requests for a missing *file*
    (the last segment has a dot, like ``/app.js``), requests that do not ask for
    ``text/html`` (API clients and ``fetch()``, which send ``*/*`` or JSON) and paths under
    ``exclude_prefixes`` (e.g. ``/api``) are answered 404, in the envelope when
    `install_exception_handlers` is installed.

    Hidden files never leave: a path with a segment starting with ``.`` (``/.env``,
    ``/.git/config``, ``/assets/.DS_Store``) is answered 404 even if the build folder has
    it, except under ``/.well-known/`` (RFC 8615: ``security.txt``, app links).

    Args:
        directory: The build output folder (e.g. ``"frontend/dist"``).
        index: The file served for client-side routes.
        exclude_prefixes: Path prefixes, relative to the mount, that never fall back.
        check_dir: Check at construction that ``directory`` exists.

    Raises:
        ValueError: If ``index`` is not a plain file name.

    Example:
        ```python
        app.include_router(api_router, prefix="/api")  # routes first
        app.mount("/", SPAStaticFiles(directory="frontend/dist", exclude_prefixes=["/api"]))
        ```
    """

    def __init__(
        self,
        *,
        directory: PathLike,
        index: str = "index.html",
        exclude_prefixes: Sequence[str] = (),
        check_dir: bool = True,
    ) -> None:
        if not index or os.path.basename(index) != index or index in (".", ".."):
            raise ValueError(f"index must be a file name such as 'index.html', got {index!r}.")
        super().__init__(directory=directory, html=True, check_dir=check_dir)
        self.index = index
        self.exclude_prefixes = tuple("/" + p.strip("/") for p in exclude_prefixes)

    def _wants_fallback(self, path: str, scope: Scope) -> bool:
        url_path = "/" + path.lstrip("/")
        if any(
            url_path == prefix or url_path.startswith(prefix + "/")
            for prefix in self.exclude_prefixes
        ):
            return False
        if "." in url_path.rsplit("/", 1)[-1]:
            return False  # looks like a file: a missing asset is a real 404
        # Browsers navigating ask for text/html; fetch() and API clients send */* or JSON.
        return "text/html" in Headers(scope=scope).get("accept", "")

    async def get_response(self, path: str, scope: Scope) -> Response:
        if _hidden(path):
            raise HTTPException(status_code=404)
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or not self._wants_fallback(path, scope):
                raise
        else:
            # StaticFiles(html=True) answers a missing path with the build's 404.html itself.
            if response.status_code != 404:
                return response
            if not self._wants_fallback(path, scope):
                raise HTTPException(status_code=404)
        return await super().get_response(self.index, scope)


def _hidden(path: str) -> bool:
    """Whether ``path`` (relative to the mount) has a segment starting with a dot, other
    than a leading ``.well-known``."""
    segments = [part for part in path.replace(os.sep, "/").split("/") if part not in ("", ".")]
    if segments and segments[0] == ".well-known":
        segments = segments[1:]
    return any(part.startswith(".") and part != ".." for part in segments)  # ..: StaticFiles
