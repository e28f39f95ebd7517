"""The response envelope: every JSON body is ``{"code": int, "message": str, "data": ...}``.

Use `ok()` to build one by hand, or put a router under `EnvelopeRoute` so that endpoints
return plain values and are answered (and documented) as ``Envelope[Model]``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette._utils import is_async_callable
from starlette.responses import JSONResponse, Response

from fastkit.errors import NO_BODY_STATUS

__all__ = ["Envelope", "EnvelopeRoute", "ok"]

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """The body of every JSON response fastkit produces.

    ``code`` mirrors the HTTP status unless an error carries its own business code,
    ``message`` is a short human-readable text and ``data`` the payload.
    ``Envelope[Item]`` is documented in OpenAPI as its own schema (``Envelope_Item_``)
    whose ``data`` refers to ``Item``.

    Example:
        ```python
        @app.get("/items/{item_id}", response_model=Envelope[Item])
        async def read_item(item_id: int) -> Envelope[Item]:
            return ok(Item(id=item_id, name="pen"))
        ```
    """

    # In responses all three are always there: OpenAPI says so (required, ``data``
    # nullable), so that generated clients need not narrow ``X | Unset`` three times.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    code: int = 200
    message: str = "success"
    data: T | None = None


def ok(data: T | None = None, *, message: str = "success", code: int = 200) -> Envelope[T]:
    """Build a success envelope.

    This is the seeds' ``create_response(200, "success", data)`` as one call.

    Args:
        data: The payload; models, lists and plain values are all fine.
        message: A short human-readable message.
        code: The envelope code; by convention the HTTP status of the response.

    Returns:
        An `Envelope` that FastAPI serializes with the route's response model.
    """
    return Envelope(code=code, message=message, data=data)


def _is_envelope_type(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, Envelope)


def _returns_response(tp: Any) -> bool:
    """True if ``tp`` is a Response class, or a union that contains one."""
    if inspect.isclass(tp):
        return issubclass(tp, Response)
    return any(_returns_response(arg) for arg in getattr(tp, "__args__", ()))


def _wrap_endpoint(endpoint: Callable[..., Any], code: int) -> Callable[..., Any]:
    """Return ``endpoint`` answering ``{"code", "message", "data"}`` around its result.

    The wrapper keeps the endpoint's signature (via ``functools.wraps``) so FastAPI
    resolves the same parameters and dependencies, and keeps it sync or async so that
    FastAPI runs it the same way (sync endpoints stay in the threadpool).
    """

    def envelope(value: Any) -> Any:
        if isinstance(value, (Envelope, Response)):
            return value
        # A dict rather than a model: FastAPI validates it once against Envelope[Model].
        return {"code": code, "message": "success", "data": value}

    if is_async_callable(endpoint):

        @functools.wraps(endpoint)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return envelope(await endpoint(*args, **kwargs))

        return async_wrapper

    @functools.wraps(endpoint)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        return envelope(endpoint(*args, **kwargs))

    return sync_wrapper


class EnvelopeRoute(APIRoute):
    """A route class that answers every JSON endpoint in the envelope.

    Under ``APIRouter(route_class=EnvelopeRoute)``, an endpoint that returns a plain
    value is answered as ``{"code": <status>, "message": "success", "data": <value>}``
    and OpenAPI documents ``Envelope[Model]``, where ``Model`` is the route's
    ``response_model`` or the endpoint's return annotation. A status code set on the
    route (e.g. ``201``) is kept and mirrored in ``code``.

    Passed through untouched: endpoints that return an `Envelope` or a `Response`,
    streaming (generator) endpoints, routes whose status has no body (204, 304) and
    routes with a non-JSON ``response_class``.

    Example:
        ```python
        router = APIRouter(route_class=EnvelopeRoute)

        @router.post("/items", status_code=201)
        async def create_item(item: Item) -> Item:
            return item  # -> 201 {"code": 201, "message": "success", "data": {...}}
        ```
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        model = self._envelope_model(endpoint, kwargs)
        if model is not None:
            kwargs["response_model"] = Envelope[model]  # type: ignore[valid-type]
            for key in ("response_model_include", "response_model_exclude"):
                # Field filters name the payload's fields: apply them inside ``data``.
                if kwargs.get(key) is not None:
                    inner = kwargs[key]
                    kwargs[key] = (
                        {"code": True, "message": True, "data": inner}
                        if key == "response_model_include"
                        else {"data": inner}
                    )
            endpoint = _wrap_endpoint(endpoint, kwargs.get("status_code") or 200)
        super().__init__(path, endpoint, **kwargs)

    @staticmethod
    def _envelope_model(endpoint: Callable[..., Any], kwargs: dict[str, Any]) -> Any | None:
        """The payload model to wrap in `Envelope`, or None to leave the route alone."""
        status_code = kwargs.get("status_code")
        if status_code is not None and (status_code < 200 or status_code in NO_BODY_STATUS):
            return None
        response_class = kwargs.get("response_class")
        if (
            response_class is not None
            and not isinstance(response_class, DefaultPlaceholder)
            and not issubclass(response_class, JSONResponse)
        ):
            return None
        raw = endpoint
        while isinstance(raw, functools.partial):
            raw = raw.func
        if inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw):
            return None
        model = kwargs.get("response_model", DefaultPlaceholder(None))
        if isinstance(model, DefaultPlaceholder):
            model = get_typed_return_annotation(endpoint)
        if model is None:
            return Any
        if _is_envelope_type(model) or _returns_response(model):
            return None
        return cast(Any, model)
