from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastkit import Envelope, EnvelopeRoute, install_exception_handlers, ok


class Item(BaseModel):
    id: int
    name: str


class User(BaseModel):
    name: str
    password: str
    email: str


def schema_ref(openapi: dict[str, Any], path: str, method: str, status: str = "200") -> str:
    content = openapi["paths"][path][method]["responses"][status]["content"]
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


# --- Envelope and ok() ------------------------------------------------------------------


def test_envelope_defaults() -> None:
    assert Envelope[int]().model_dump() == {"code": 200, "message": "success", "data": None}


def test_ok_is_create_response() -> None:
    env = ok({"a": 1})
    assert env.model_dump() == {"code": 200, "message": "success", "data": {"a": 1}}
    custom = ok([1, 2], message="created", code=201)
    assert (custom.code, custom.message, custom.data) == (201, "created", [1, 2])


def test_envelope_validates_payload_type() -> None:
    with pytest.raises(ValueError, match="id"):
        Envelope[Item].model_validate({"code": 200, "message": "x", "data": {"name": "a"}})


def test_envelope_openapi_schemas() -> None:
    app = FastAPI()

    @app.get("/one", response_model=Envelope[Item])
    async def one() -> Envelope[Item]:
        return ok(Item(id=1, name="a"))

    @app.get("/many", response_model=Envelope[list[Item]])
    async def many() -> Envelope[list[Item]]:
        return ok([Item(id=1, name="a")])

    client = TestClient(app)
    assert client.get("/one").json() == {
        "code": 200,
        "message": "success",
        "data": {"id": 1, "name": "a"},
    }
    openapi = client.get("/openapi.json").json()
    schemas = openapi["components"]["schemas"]
    assert schema_ref(openapi, "/one", "get") == "Envelope_Item_"
    assert schema_ref(openapi, "/many", "get") == "Envelope_list_Item__"
    one_schema = schemas["Envelope_Item_"]
    assert set(one_schema["properties"]) == {"code", "message", "data"}
    assert {"$ref": "#/components/schemas/Item"} in one_schema["properties"]["data"]["anyOf"]
    many_data = schemas["Envelope_list_Item__"]["properties"]["data"]["anyOf"]
    assert {"type": "array", "items": {"$ref": "#/components/schemas/Item"}} in many_data
    # Every response has all three: required, so that generated clients need not narrow
    # "X | Unset" (data stays nullable).
    for name in ("Envelope_Item_", "Envelope_list_Item__"):
        assert sorted(schemas[name]["required"]) == ["code", "data", "message"]
    assert {"type": "null"} in one_schema["properties"]["data"]["anyOf"]


# --- EnvelopeRoute ------------------------------------------------------------------------


def make_client(router: APIRouter, **include: Any) -> TestClient:
    app = FastAPI()
    install_exception_handlers(app)
    app.include_router(router, **include)
    return TestClient(app, raise_server_exceptions=False)


def test_route_wraps_return_annotation_and_documents_it() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/items/{item_id}")
    async def read(item_id: int) -> Item:
        return Item(id=item_id, name="pen")

    client = make_client(router)
    response = client.get("/items/7")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "success", "data": {"id": 7, "name": "pen"}}
    assert schema_ref(client.get("/openapi.json").json(), "/items/{item_id}", "get") == (
        "Envelope_Item_"
    )


def test_route_wraps_explicit_response_model_and_validates_it() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/items", response_model=list[Item])
    def items() -> Any:
        return [{"id": 1, "name": "a", "extra": "dropped"}]

    client = make_client(router)
    assert client.get("/items").json()["data"] == [{"id": 1, "name": "a"}]
    openapi = client.get("/openapi.json").json()
    assert schema_ref(openapi, "/items", "get") == "Envelope_list_Item__"


def test_route_keeps_status_code_and_mirrors_it_in_code() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    client = make_client(router)
    response = client.post("/items", json={"id": 1, "name": "a"})
    assert response.status_code == 201
    assert response.json() == {"code": 201, "message": "success", "data": {"id": 1, "name": "a"}}
    openapi = client.get("/openapi.json").json()
    assert schema_ref(openapi, "/items", "post", "201") == "Envelope_Item_"


def test_route_under_prefix_and_dependencies() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    def limit(n: int = 2) -> int:
        return n

    @router.get("/numbers")
    async def numbers(n: int = Depends(limit)) -> list[int]:
        return list(range(n))

    client = make_client(router, prefix="/v1")
    assert client.get("/v1/numbers", params={"n": 3}).json()["data"] == [0, 1, 2]
    bad = client.get("/v1/numbers", params={"n": "x"})
    assert bad.status_code == 422
    assert bad.json()["data"][0]["loc"] == ["query", "n"]


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_sync_endpoint_still_runs_in_threadpool() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/sync")
    def sync_endpoint() -> bool:
        return _loop_running_here()

    @router.get("/async")
    async def async_endpoint() -> bool:
        return _loop_running_here()

    client = make_client(router)
    assert client.get("/async").json()["data"] is True
    # A sync endpoint must not be called on the event loop: it would block it.
    assert client.get("/sync").json()["data"] is False


def test_returned_envelope_passes_through() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/custom")
    async def custom() -> Envelope[Item]:
        return ok(Item(id=1, name="a"), message="found it", code=20001)

    response = make_client(router).get("/custom")
    assert response.json() == {"code": 20001, "message": "found it", "data": {"id": 1, "name": "a"}}


def test_returned_envelope_under_plain_annotation_is_not_double_wrapped() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/custom", response_model=Item)
    async def custom() -> Any:
        return ok(Item(id=1, name="a"), message="kept")

    response = make_client(router).get("/custom")
    assert response.json() == {"code": 200, "message": "kept", "data": {"id": 1, "name": "a"}}


def test_returned_response_passes_through() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("hello")

    @router.get("/maybe", response_model=Item)
    async def maybe(raw: bool = False) -> Any:
        if raw:
            return PlainTextResponse("raw", status_code=202)
        return Item(id=1, name="a")

    client = make_client(router)
    assert client.get("/text").text == "hello"
    raw = client.get("/maybe", params={"raw": True})
    assert (raw.status_code, raw.text) == (202, "raw")
    assert client.get("/maybe").json()["data"] == {"id": 1, "name": "a"}


def test_streaming_html_and_no_body_routes_are_untouched() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks(), media_type="text/plain")

    @router.get("/lines")
    def lines() -> Iterator[str]:
        yield "x"
        yield "y"

    @router.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<h1>hi</h1>"

    @router.delete("/items/{item_id}", status_code=204)
    async def delete(item_id: int) -> None:
        return None

    client = make_client(router)
    assert client.get("/stream").text == "ab"
    # FastAPI streams a generator endpoint as JSON Lines: each item as is, no envelope.
    assert client.get("/lines").text == '"x"\n"y"\n'
    page_response = client.get("/page")
    assert page_response.text == "<h1>hi</h1>"
    assert page_response.headers["content-type"].startswith("text/html")
    deleted = client.delete("/items/3")
    assert (deleted.status_code, deleted.content) == (204, b"")


def test_untyped_endpoint_is_wrapped_as_any() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/anything")
    async def anything():  # type: ignore[no-untyped-def]
        return {"free": ["form", 1]}

    response = make_client(router).get("/anything")
    assert response.json() == {"code": 200, "message": "success", "data": {"free": ["form", 1]}}


def test_include_and_exclude_apply_inside_data() -> None:
    router = APIRouter(route_class=EnvelopeRoute)
    user = User(name="ann", password="s3cret", email="a@example.com")

    @router.get("/public", response_model=User, response_model_exclude={"password"})
    async def public() -> Any:
        return user

    @router.get("/names", response_model=User, response_model_include={"name"})
    async def names() -> Any:
        return user

    client = make_client(router)
    assert client.get("/public").json() == {
        "code": 200,
        "message": "success",
        "data": {"name": "ann", "email": "a@example.com"},
    }
    assert client.get("/names").json() == {
        "code": 200,
        "message": "success",
        "data": {"name": "ann"},
    }


def test_wrong_return_value_is_a_500_without_internals() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/broken", response_model=Item)
    async def broken() -> Any:
        return {"id": "not-a-number", "name": "leaky-secret-value"}

    response = make_client(router).get("/broken")
    assert response.status_code == 500
    assert response.json() == {"code": 500, "message": "Internal Server Error", "data": None}
    assert "leaky-secret-value" not in response.text


def test_app_wide_route_class() -> None:
    app = FastAPI()
    app.router.route_class = EnvelopeRoute

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    assert TestClient(app).get("/ping").json() == {
        "code": 200,
        "message": "success",
        "data": "pong",
    }
