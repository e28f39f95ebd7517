"""Routers that answer ``/items`` and ``/items/`` alike, without the 307 redirect."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import fastapi.routing
from fastapi import APIRouter
from fastapi.routing import APIRoute

__all__ = [
    "OptionalSlashRouter",
    "api_routes",
    "matched_route",
    "route_template",
    "unique_id_from_tag",
]


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


def route_template(scope: Mapping[str, Any]) -> str | None:
    """The matched route's path template with every prefix: ``/v1/todos/{todo_id}``.

    The raw path (``/v1/todos/42``) would make one bucket, metric or cache entry per id;
    the template makes one per route. None before routing or when no route matched.

    FastAPI 0.16x resolves included routers lazily: ``scope["route"]`` is then the route as
    declared, without the routers' prefixes, and the full template is on the effective
    route FastAPI keeps in ``scope["fastapi"]``; older versions put the full route in
    ``scope["route"]``. Mounted sub-apps add their mount path (``root_path``).
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if not isinstance(template, str) or not template:
        route = scope.get("route")
        template = getattr(route, "path_format", None)
        if not isinstance(template, str) or not template:
            return None
    return f"{scope.get('root_path', '')}{template}"


def matched_route(scope: Mapping[str, Any]) -> Any:
    """The object that stands for the route a request matched; None before routing.

    FastAPI's effective route context where it keeps one (a route of a lazily included
    router, with its prefixes and its routers' dependencies), else ``scope["route"]``.
    Stable for the app's life: a key for what is worked out once per route (compare by
    identity; routes are unhashable).
    """
    fastapi_scope = scope.get("fastapi")
    if fastapi_scope:
        context = fastapi_scope.get("effective_route_context")
        if context is not None:
            return context
    return scope.get("route")


def api_routes(app: Any) -> Iterator[Any]:
    """Every `APIRoute` of ``app`` as served: with its routers' prefixes and dependencies.

    On FastAPI versions that resolve included routers lazily, each item is FastAPI's
    route context (it has ``path_format``, ``methods``, ``dependant``...), else the route.
    """
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI before lazy router inclusion: routes are flat
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def unique_id_from_tag(route: APIRoute) -> str:
    """An OpenAPI operation id ``<first tag>_<function name>``, e.g. ``todos_list_todos``.

    FastAPI's default joins the function name, the path and the method
    (``list_todos_todos_get``), which generated clients turn into awkward method names.
    Pass this as ``generate_unique_id_function`` to the app (or a router); without tags
    the id is the function name. An id already starting with the tag is left alone
    (``todos_export`` under ``todos``). Two routes that end up with one id make FastAPI
    warn ("Duplicate Operation ID") when it builds the schema: rename one of them.

    Example:
        ```python
        app = FastAPI(generate_unique_id_function=unique_id_from_tag)
        ```
    """
    name = route.name
    if route.tags:
        tag = route.tags[0]
        tag_text = str(getattr(tag, "value", tag))  # tags may be Enum members
        prefix = re.sub(r"[^0-9a-zA-Z]+", "_", tag_text).strip("_").lower()
        if prefix and name != prefix and not name.startswith(prefix + "_"):
            name = f"{prefix}_{name}"
    return name
