"""Routers that answer ``/items`` and ``/items/`` alike, without the 307 redirect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

__all__ = ["OptionalSlashRouter"]


class OptionalSlashRouter(APIRouter):
    """An ``APIRouter`` whose routes answer with and without a trailing slash.

    FastAPI answers ``/items/`` with a ``307`` redirect to ``/items`` (and the other way
    round): an extra round trip, and some clients drop the body or the ``Authorization``
    header when they follow it (FastAPI issue #2060). Here each route is also registered
    under its other spelling, hidden from OpenAPI, so both paths answer directly. Pass any
    ``APIRouter`` option, ``route_class=EnvelopeRoute`` included.

    Give the prefix to this router (``OptionalSlashRouter(prefix="/items")``), not only
    to ``include_router``: a router cannot see a prefix added when it is included, so
    ``@router.get("/")`` included under ``prefix="/items"`` still redirects ``/items``.
    A bare ``"/"`` on a router without a prefix has no slash-less spelling and is
    registered once.

    Example:
        ```python
        router = OptionalSlashRouter(prefix="/items", route_class=EnvelopeRoute)

        @router.get("")  # answers /items and /items/
        async def list_items() -> list[Item]: ...
        ```
    """

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        other = path[:-1] if path.endswith("/") else path + "/"
        if self.prefix + other:
            super().add_api_route(other, endpoint, **{**kwargs, "include_in_schema": False})
