"""fastkit.pagination: params bounds through a real app, in-memory pages, cursors, schemas.

No ``from __future__ import annotations`` here: the apps are built inside a function that
takes the marker (``Depends`` or ``Query``), and ``Annotated[PageParams, marker()]`` must
be evaluated there.
"""

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import column

from fastkit import Envelope, EnvelopeRoute, install_exception_handlers, ok
from fastkit.pagination import (
    CursorPage,
    CursorParams,
    InvalidCursor,
    LimitOffsetPage,
    LimitOffsetParams,
    Page,
    PageParams,
    SortParams,
    decode_cursor,
    encode_cursor,
    paginate,
)


class Item(BaseModel):
    id: int
    name: str


BigPages = PageParams.configure(default_size=50, max_size=500)
SmallLimits = LimitOffsetParams.configure(default_size=5, max_size=10)
SmallCursors = CursorParams.configure(default_size=10, max_size=30)
ItemSort = SortParams.allow("name", "score", "created_at", default="-created_at")
SORT_COLUMNS = {name: column(name) for name in ("name", "score", "created_at")}


def params_app(marker: Callable[[], Any]) -> FastAPI:
    """Echo endpoints for every params model, declared with ``marker()``."""
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/page")
    def page(params: Annotated[PageParams, marker()]) -> dict[str, int]:
        return {"page": params.page, "page_size": params.page_size, "offset": params.offset}

    @app.get("/big-page")
    def big_page(params: Annotated[BigPages, marker()]) -> dict[str, int]:
        return {"page": params.page, "page_size": params.page_size}

    @app.get("/limit-offset")
    def limit_offset(params: Annotated[LimitOffsetParams, marker()]) -> dict[str, int]:
        return params.model_dump()

    @app.get("/small-limit")
    def small_limit(params: Annotated[SmallLimits, marker()]) -> dict[str, int]:
        return params.model_dump()

    @app.get("/cursor")
    def cursor(params: Annotated[CursorParams, marker()]) -> dict[str, Any]:
        return {"cursor_length": len(params.cursor or ""), "size": params.size}

    @app.get("/small-cursor")
    def small_cursor(params: Annotated[SmallCursors, marker()]) -> dict[str, Any]:
        return {"size": params.size}

    @app.get("/sort")
    def sort(params: Annotated[ItemSort, marker()]) -> dict[str, Any]:
        return {
            "fields": params.fields,
            "order_by": [str(clause) for clause in params.order_by(SORT_COLUMNS)],
        }

    return app


@pytest.fixture(params=["depends", "query"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """Both ways a user declares a params model: ``Depends()`` and ``Query()``."""
    marker = Depends if request.param == "depends" else Query
    with TestClient(params_app(marker)) as client:
        yield client


def assert_422(response: Any, field: str, error_type: str, msg: str = "") -> None:
    """A 422 in the envelope, naming the query parameter: never clamped, never a 500."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == 422
    assert body["message"] == "Request validation failed"
    [error] = body["data"]
    assert error["loc"] == ["query", field]
    assert error["type"] == error_type
    assert msg in error["msg"]


# --- PageParams ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", {"page": 1, "page_size": 20, "offset": 0}, id="defaults"),
        pytest.param("page=3", {"page": 3, "page_size": 20, "offset": 40}, id="page-3"),
        pytest.param("page_size=1", {"page": 1, "page_size": 1, "offset": 0}, id="size-1"),
        pytest.param(
            "page=2&page_size=100", {"page": 2, "page_size": 100, "offset": 100}, id="size-100"
        ),
        pytest.param("page=1&unknown=5", {"page": 1, "page_size": 20, "offset": 0}, id="extra"),
    ],
)
def test_page_params_accepted(client: TestClient, query: str, expected: dict[str, int]) -> None:
    response = client.get(f"/page?{query}")
    assert response.status_code == 200, response.text
    assert response.json() == expected


@pytest.mark.parametrize(
    ("query", "field", "error_type"),
    [
        pytest.param("page=0", "page", "greater_than_equal", id="page-0"),
        pytest.param("page=-1", "page", "greater_than_equal", id="page-negative"),
        pytest.param("page=x", "page", "int_parsing", id="page-text"),
        pytest.param("page=1.5", "page", "int_parsing", id="page-fraction"),
        pytest.param("page=", "page", "int_parsing", id="page-empty"),
        pytest.param("page_size=0", "page_size", "greater_than_equal", id="size-0"),
        pytest.param("page_size=-1", "page_size", "greater_than_equal", id="size-negative"),
        pytest.param("page_size=101", "page_size", "less_than_equal", id="size-101"),
        pytest.param("page_size=x", "page_size", "int_parsing", id="size-text"),
        pytest.param(f"page={2**64}", "page", "less_than_equal", id="page-beyond-int64"),
    ],
)
def test_page_params_rejected(client: TestClient, query: str, field: str, error_type: str) -> None:
    assert_422(client.get(f"/page?{query}"), field, error_type)


def test_configured_page_params(client: TestClient) -> None:
    assert client.get("/big-page").json() == {"page": 1, "page_size": 50}
    assert client.get("/big-page?page_size=500").json() == {"page": 1, "page_size": 500}
    assert_422(client.get("/big-page?page_size=501"), "page_size", "less_than_equal", "500")
    assert_422(client.get("/big-page?page_size=0"), "page_size", "greater_than_equal")
    # The base class keeps its own bounds.
    assert_422(client.get("/page?page_size=101"), "page_size", "less_than_equal", "100")


@pytest.mark.parametrize("cls", [PageParams, LimitOffsetParams, CursorParams])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"default_size": 0}, "default_size", id="default-0"),
        pytest.param({"default_size": 101}, "default_size", id="default-above-max"),
        pytest.param({"default_size": 50, "max_size": 10}, "default_size", id="default>max"),
        pytest.param({"max_size": 0}, "max_size", id="max-0"),
        pytest.param({"default_size": -1, "max_size": -1}, "max_size", id="negative"),
    ],
)
def test_configure_rejects_bad_sizes(cls: Any, kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls.configure(**kwargs)


# --- LimitOffsetParams ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", {"limit": 20, "offset": 0}, id="defaults"),
        pytest.param("limit=1&offset=0", {"limit": 1, "offset": 0}, id="limit-1"),
        pytest.param("limit=100&offset=5000", {"limit": 100, "offset": 5000}, id="limit-100"),
    ],
)
def test_limit_offset_accepted(client: TestClient, query: str, expected: dict[str, int]) -> None:
    assert client.get(f"/limit-offset?{query}").json() == expected


@pytest.mark.parametrize(
    ("query", "field", "error_type"),
    [
        pytest.param("limit=0", "limit", "greater_than_equal", id="limit-0"),
        pytest.param("limit=-1", "limit", "greater_than_equal", id="limit-negative"),
        pytest.param("limit=101", "limit", "less_than_equal", id="limit-101"),
        pytest.param("limit=x", "limit", "int_parsing", id="limit-text"),
        pytest.param("offset=-1", "offset", "greater_than_equal", id="offset-negative"),
        pytest.param("offset=x", "offset", "int_parsing", id="offset-text"),
        pytest.param(f"offset={2**63}", "offset", "less_than_equal", id="offset-beyond-int64"),
    ],
)
def test_limit_offset_rejected(client: TestClient, query: str, field: str, error_type: str) -> None:
    assert_422(client.get(f"/limit-offset?{query}"), field, error_type)


def test_configured_limit_offset(client: TestClient) -> None:
    assert client.get("/small-limit").json() == {"limit": 5, "offset": 0}
    assert client.get("/small-limit?limit=10").json() == {"limit": 10, "offset": 0}
    assert_422(client.get("/small-limit?limit=11"), "limit", "less_than_equal", "10")


# --- CursorParams --------------------------------------------------------------------------


def test_cursor_params_defaults_and_sizes(client: TestClient) -> None:
    assert client.get("/cursor").json() == {"cursor_length": 0, "size": 20}
    assert client.get("/cursor?size=1").json()["size"] == 1
    assert client.get("/cursor?size=100").json()["size"] == 100
    assert_422(client.get("/cursor?size=0"), "size", "greater_than_equal")
    assert_422(client.get("/cursor?size=101"), "size", "less_than_equal")
    assert_422(client.get("/cursor?size=x"), "size", "int_parsing")
    assert client.get("/small-cursor").json() == {"size": 10}
    assert client.get("/small-cursor?size=30").json() == {"size": 30}
    assert_422(client.get("/small-cursor?size=31"), "size", "less_than_equal", "30")


def test_cursor_length_is_bounded(client: TestClient) -> None:
    response = client.get("/cursor", params={"cursor": "a" * 4096})
    assert response.json() == {"cursor_length": 4096, "size": 20}
    assert_422(client.get("/cursor", params={"cursor": "a" * 4097}), "cursor", "string_too_long")


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("short", id="short-str"),
        pytest.param("x" * 31, id="31-chars"),
        pytest.param(b"x" * 31, id="31-bytes"),
        pytest.param("", id="empty"),
    ],
)
def test_cursor_secret_must_be_long(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CursorParams.configure(secret=secret)


def test_cursor_secret_is_per_class() -> None:
    signed = CursorParams.configure(secret="s" * 32)
    also = CursorParams.configure(secret=b"t" * 32)
    assert signed.cursor_secret == b"s" * 32
    assert also.cursor_secret == b"t" * 32
    assert CursorParams.cursor_secret is None  # configuring never changes the base class


# --- SortParams ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fields", "order_by"),
    [
        pytest.param("", [["created_at", True]], ["created_at DESC"], id="default"),
        pytest.param("sort=", [["created_at", True]], ["created_at DESC"], id="empty-default"),
        pytest.param("sort=name", [["name", False]], ["name ASC"], id="one"),
        pytest.param(
            "sort=-score,name",
            [["score", True], ["name", False]],
            ["score DESC", "name ASC"],
            id="two",
        ),
        pytest.param(
            "sort=name,-created_at,score",
            [["name", False], ["created_at", True], ["score", False]],
            ["name ASC", "created_at DESC", "score ASC"],
            id="three",
        ),
    ],
)
def test_sort_accepted(
    client: TestClient, query: str, fields: list[list[Any]], order_by: list[str]
) -> None:
    response = client.get(f"/sort?{query}")
    assert response.status_code == 200, response.text
    assert response.json() == {"fields": fields, "order_by": order_by}


@pytest.mark.parametrize(
    ("sort", "msg"),
    [
        pytest.param("bogus", "allowed: name, score, created_at", id="unknown"),
        pytest.param("-password", "allowed: name, score, created_at", id="unknown-desc"),
        pytest.param("name,name", "listed twice", id="duplicate"),
        pytest.param("name,-name", "listed twice", id="duplicate-directions"),
        pytest.param("name,,score", "comma-separated", id="empty-segment"),
        pytest.param(",name", "comma-separated", id="leading-comma"),
        pytest.param("name,", "comma-separated", id="trailing-comma"),
        pytest.param("-", "comma-separated", id="bare-minus"),
        pytest.param("--name", "comma-separated", id="double-minus"),
        pytest.param("+name", "comma-separated", id="plus"),
        pytest.param("na-me", "comma-separated", id="inner-minus"),
        pytest.param("name desc", "comma-separated", id="sql-direction"),
        pytest.param("name;drop table x", "comma-separated", id="sql-injection"),
        pytest.param("name)--", "comma-separated", id="sql-comment"),
        pytest.param("lower(name)", "comma-separated", id="function"),
        pytest.param("items.name", "comma-separated", id="qualified"),
    ],
)
def test_sort_rejected(client: TestClient, sort: str, msg: str) -> None:
    response = client.get("/sort", params={"sort": sort})
    assert_422(response, "sort", "value_error", msg)


def test_sort_length_is_bounded(client: TestClient) -> None:
    response = client.get("/sort", params={"sort": "name," * 100 + "score"})
    assert_422(response, "sort", "string_too_long")


def test_sort_without_default_gives_no_clauses() -> None:
    sort = SortParams.allow("name")
    assert sort().fields == []
    assert sort().order_by(SORT_COLUMNS) == []
    assert sort(sort="-name").fields == [("name", True)]


def test_sort_order_by_needs_every_allowed_column() -> None:
    with pytest.raises(ValueError, match="'score' has no column"):
        ItemSort(sort="score").order_by({"name": column("name")})


@pytest.mark.parametrize(
    ("fields", "default", "match"),
    [
        pytest.param((), None, "at least one field", id="no-fields"),
        pytest.param(("",), None, "identifier", id="empty-name"),
        pytest.param(("bad name",), None, "identifier", id="space"),
        pytest.param(("1st",), None, "identifier", id="digit-first"),
        pytest.param(("-name",), None, "identifier", id="minus"),
        pytest.param(("name;drop",), None, "identifier", id="sql"),
        pytest.param(("name",), "score", "default sort 'score' is invalid", id="default-unknown"),
        pytest.param(("name",), "name,-name", "listed twice", id="default-duplicate"),
        pytest.param(("name",), "name desc", "comma-separated", id="default-malformed"),
    ],
)
def test_allow_rejects_bad_configuration(
    fields: tuple[str, ...], default: str | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        SortParams.allow(*fields, default=default)


# --- paginate() over sequences -------------------------------------------------------------

PAGE_TOTALS = [
    # (length, page, page_size) -> (first item, item count, pages)
    pytest.param(0, 1, 20, None, 0, 0, id="empty"),
    pytest.param(0, 3, 20, None, 0, 0, id="empty-page-3"),
    pytest.param(40, 1, 20, 0, 20, 2, id="exact-first"),
    pytest.param(40, 2, 20, 20, 20, 2, id="exact-last"),
    pytest.param(40, 3, 20, None, 0, 2, id="exact-past-end"),
    pytest.param(57, 3, 20, 40, 17, 3, id="partial-last"),
    pytest.param(57, 1, 100, 0, 57, 1, id="one-page"),
    pytest.param(1, 1, 1, 0, 1, 1, id="single"),
    pytest.param(5, 2, 4, 4, 1, 2, id="one-left"),
]


@pytest.mark.parametrize(("length", "page", "size", "first", "count", "pages"), PAGE_TOTALS)
def test_paginate_sequence_pages(
    length: int, page: int, size: int, first: int | None, count: int, pages: int
) -> None:
    items = list(range(length))
    result = paginate(items, PageParams(page=page, page_size=size))
    assert isinstance(result, Page)
    assert result.items == items[(page - 1) * size : page * size]
    assert len(result.items) == count
    assert (result.items[0] if result.items else None) == first
    assert (result.total, result.page, result.page_size, result.pages) == (
        length,
        page,
        size,
        pages,
    )


@pytest.mark.parametrize(
    ("length", "limit", "offset", "expected"),
    [
        pytest.param(0, 20, 0, [], id="empty"),
        pytest.param(10, 3, 0, [0, 1, 2], id="first"),
        pytest.param(10, 3, 8, [8, 9], id="partial"),
        pytest.param(10, 3, 10, [], id="past-end"),
    ],
)
def test_paginate_sequence_limit_offset(
    length: int, limit: int, offset: int, expected: list[int]
) -> None:
    result = paginate(tuple(range(length)), LimitOffsetParams(limit=limit, offset=offset))
    assert isinstance(result, LimitOffsetPage)
    assert result.model_dump() == {
        "items": expected,
        "total": length,
        "limit": limit,
        "offset": offset,
    }


def test_paginate_sequence_transformer_sees_only_the_page() -> None:
    seen: list[list[int]] = []

    def to_items(numbers: Any) -> list[Item]:
        seen.append(list(numbers))
        return [Item(id=n, name=f"item-{n}") for n in numbers]

    result = paginate(list(range(10)), PageParams(page=2, page_size=4), transformer=to_items)
    assert seen == [[4, 5, 6, 7]]
    assert [item.name for item in result.items] == ["item-4", "item-5", "item-6", "item-7"]
    assert result.total == 10


def test_paginate_sequence_refuses_cursors() -> None:
    with pytest.raises(TypeError, match=r"fastkit\.db"):
        paginate([1, 2], CursorParams())  # type: ignore[call-overload]


def test_page_without_total_has_no_pages() -> None:
    page = Page[int].create([1, 2], None, PageParams(page=2, page_size=2))
    assert (page.total, page.pages, page.page, page.page_size) == (None, None, 2, 2)


# --- cursor encoding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
        pytest.param(7, id="int"),
        pytest.param(-2.5, id="float"),
        pytest.param('naïve, "quoted" text', id="str"),
        pytest.param(dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc), id="dt"),
        pytest.param(dt.datetime(2024, 5, 6, 7, 8, 9), id="naive-datetime"),
        pytest.param(dt.date(2024, 2, 29), id="date"),
        pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"), id="uuid"),
        pytest.param(decimal.Decimal("12.3400"), id="decimal"),
    ],
)
def test_cursor_round_trip_keeps_types(value: Any) -> None:
    cursor = encode_cursor([value, 42], "key,id")
    values, backward = decode_cursor(cursor, "key,id")
    assert values == [value, 42]
    assert type(values[0]) is type(value)
    assert backward is False
    assert decode_cursor(encode_cursor([value], "k", backward=True), "k") == ([value], True)


def test_cursor_is_url_safe_and_refuses_unsupported_types() -> None:
    cursor = encode_cursor(["?&=/+ é" * 10, 1], "name,id")
    assert cursor.isascii()
    assert all(c.isalnum() or c in "-_" for c in cursor)
    with pytest.raises(TypeError, match="Cannot put bytes in a cursor"):
        encode_cursor([b"raw"], "k")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, int, id="bool-for-int"),
        pytest.param(1, bool, id="int-for-bool"),
        pytest.param("1", int, id="str-for-int"),
        pytest.param(dt.datetime(2024, 1, 1), dt.date, id="datetime-for-date"),
        pytest.param(dt.date(2024, 1, 1), dt.datetime, id="date-for-datetime"),
        pytest.param(1.5, int, id="float-for-int"),
    ],
)
def test_decode_cursor_checks_types(value: Any, expected: type) -> None:
    cursor = encode_cursor([value], "k")
    with pytest.raises(InvalidCursor, match="wrong type"):
        decode_cursor(cursor, "k", types=[expected])


def test_decode_cursor_accepts_int_for_float() -> None:
    assert decode_cursor(encode_cursor([3], "k"), "k", types=[float]) == ([3.0], False)


def test_signed_cursor_round_trip() -> None:
    secret = b"k" * 32
    cursor = encode_cursor([1, "a"], "n,id", secret=secret)
    assert decode_cursor(cursor, "n,id", secret=secret) == ([1, "a"], False)
    with pytest.raises(InvalidCursor, match="signature"):
        decode_cursor(cursor, "n,id", secret=b"j" * 32)
    with pytest.raises(InvalidCursor, match="signature"):
        decode_cursor(cursor.partition(".")[0], "n,id", secret=secret)
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "n,id")  # a signed cursor where none is expected


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
