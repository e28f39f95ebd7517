"""fastkit.pagination.pages: page models in responses (enveloped too) and in OpenAPI."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastkit import Envelope, EnvelopeRoute, install_exception_handlers, ok
from fastkit.pagination import (
    CursorPage,
    LimitOffsetPage,
    LimitOffsetParams,
    Page,
    PageParams,
    paginate,
)
from tests.pagination.support import assert_422


class Item(BaseModel):
    id: int
    name: str


# --- page models in responses and OpenAPI --------------------------------------------------

ITEMS = [Item(id=n, name=f"item-{n}") for n in range(1, 8)]


def pages_app() -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/enveloped", response_model=Envelope[Page[Item]])
    def enveloped(params: Annotated[PageParams, Depends()]) -> Envelope[Page[Item]]:
        return ok(paginate(ITEMS, params))

    @app.get("/limit-offset")
    def limit_offset(params: Annotated[LimitOffsetParams, Query()]) -> LimitOffsetPage[Item]:
        return paginate(ITEMS, params)

    @app.get("/cursor")
    def cursor() -> CursorPage[Item]:
        return CursorPage[Item](items=ITEMS[:2], next_cursor="abc", previous_cursor=None, size=2)

    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/wrapped")
    def wrapped(params: Annotated[PageParams, Depends()]) -> Page[Item]:
        return paginate(ITEMS, params)

    app.include_router(router)
    return app


def response_schema(openapi: dict[str, Any], path: str) -> str:
    content = openapi["paths"][path]["get"]["responses"]["200"]["content"]
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_enveloped_page_renders() -> None:
    with TestClient(pages_app()) as client:
        response = client.get("/enveloped?page=2&page_size=3")
        assert response.json() == {
            "code": 200,
            "message": "success",
            "data": {
                "items": [i.model_dump() for i in ITEMS[3:6]],
                "total": 7,
                "page": 2,
                "page_size": 3,
                "pages": 3,
            },
        }
        wrapped = client.get("/wrapped?page=3&page_size=3").json()
        assert wrapped == {
            "code": 200,
            "message": "success",
            "data": {
                "items": [ITEMS[6].model_dump()],
                "total": 7,
                "page": 3,
                "page_size": 3,
                "pages": 3,
            },
        }
        assert client.get("/limit-offset?limit=2&offset=6").json() == {
            "items": [ITEMS[6].model_dump()],
            "total": 7,
            "limit": 2,
            "offset": 6,
        }
        # Bad params under an EnvelopeRoute are still the 422 envelope.
        assert_422(client.get("/wrapped?page=0"), "page", "greater_than_equal")


def test_page_schemas_in_openapi() -> None:
    with TestClient(pages_app()) as client:
        openapi = client.get("/openapi.json").json()
    schemas = openapi["components"]["schemas"]
    assert {
        "Item",
        "Page_Item_",
        "Envelope_Page_Item__",
        "CursorPage_Item_",
        "LimitOffsetPage_Item_",
    } <= set(schemas)
    assert response_schema(openapi, "/enveloped") == "Envelope_Page_Item__"
    assert response_schema(openapi, "/wrapped") == "Envelope_Page_Item__"
    assert response_schema(openapi, "/limit-offset") == "LimitOffsetPage_Item_"
    assert response_schema(openapi, "/cursor") == "CursorPage_Item_"
    item_ref = {"$ref": "#/components/schemas/Item"}
    assert schemas["Page_Item_"]["properties"]["items"]["items"] == item_ref
    assert schemas["CursorPage_Item_"]["properties"]["items"]["items"] == item_ref
    assert schemas["LimitOffsetPage_Item_"]["properties"]["items"]["items"] == item_ref
    data = schemas["Envelope_Page_Item__"]["properties"]["data"]
    assert {"$ref": "#/components/schemas/Page_Item_"} in data["anyOf"]
    assert set(schemas["Page_Item_"]["required"]) == {
        "items",
        "total",
        "page",
        "page_size",
        "pages",
    }
    # The params are documented as query parameters, either way they are declared.
    for path, names in [
        ("/enveloped", ["page", "page_size"]),
        ("/limit-offset", ["limit", "offset"]),
    ]:
        params = openapi["paths"][path]["get"]["parameters"]
        assert [(p["name"], p["in"]) for p in params] == [(n, "query") for n in names]
