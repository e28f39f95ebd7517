"""fastkit.pagination.params: the query models' bounds through a real app, as Depends and Query.

No ``from __future__ import annotations`` here: the apps are built inside a function that
takes the marker (``Depends`` or ``Query``), and ``Annotated[PageParams, marker()]`` must
be evaluated there.
"""

import inspect
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict
from sqlalchemy import column

from fastkit import install_exception_handlers
from fastkit.pagination import (
    CursorParams,
    LimitOffsetParams,
    PageParams,
    SortParams,
)
from tests.pagination.support import assert_422


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
        return {"cursor_length": len(params.cursor or ""), "page_size": params.page_size}

    @app.get("/small-cursor")
    def small_cursor(params: Annotated[SmallCursors, marker()]) -> dict[str, Any]:
        return {"page_size": params.page_size}

    @app.get("/page-and-sort")
    def page_and_sort(
        params: Annotated[PageParams, marker()],
        sort: Annotated[ItemSort, marker()],
        done: bool | None = None,
    ) -> dict[str, Any]:
        return {"page": params.page, "fields": sort.fields, "done": done}

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
    assert client.get("/cursor").json() == {"cursor_length": 0, "page_size": 20}
    assert client.get("/cursor?page_size=1").json()["page_size"] == 1
    assert client.get("/cursor?page_size=100").json()["page_size"] == 100
    assert_422(client.get("/cursor?page_size=0"), "page_size", "greater_than_equal")
    assert_422(client.get("/cursor?page_size=101"), "page_size", "less_than_equal")
    assert_422(client.get("/cursor?page_size=x"), "page_size", "int_parsing")
    assert client.get("/small-cursor").json() == {"page_size": 10}
    assert client.get("/small-cursor?page_size=30").json() == {"page_size": 30}
    assert_422(client.get("/small-cursor?page_size=31"), "page_size", "less_than_equal", "30")


def test_cursor_params_still_read_the_deprecated_size(client: TestClient) -> None:
    """0.1's ``?size=`` works for a release, declared either way; ``page_size`` wins."""
    assert client.get("/cursor?size=7").json()["page_size"] == 7
    assert client.get("/small-cursor?size=30").json() == {"page_size": 30}
    assert client.get("/cursor?size=7&page_size=9").json()["page_size"] == 9
    for query, kind in (("size=0", "greater_than_equal"), ("size=101", "less_than_equal")):
        response = client.get(f"/cursor?{query}")
        assert response.status_code == 422
        assert [error["type"] for error in response.json()["data"]] == [kind]
    assert client.get("/small-cursor?size=31").status_code == 422
    assert client.get("/cursor?size=x").status_code == 422
    # Not advertised: the schema shows page_size only.
    names = [
        parameter["name"]
        for parameter in client.get("/openapi.json").json()["paths"]["/cursor"]["get"]["parameters"]
    ]
    assert names == ["cursor", "page_size"]


def test_cursor_params_built_directly_read_the_deprecated_size() -> None:
    assert CursorParams(size=5).page_size == 5
    assert SmallCursors(size=30).page_size == 30
    assert CursorParams(size=5, page_size=7).page_size == 7
    with pytest.raises(RequestValidationError) as info:
        CursorParams(size=0)
    assert [error["loc"] for error in info.value.errors()] == [("query", "page_size")]


def test_subclasses_of_cursor_params_keep_a_valid_signature() -> None:
    """A model with extra="allow" has **kwargs, which must stay last; a subclass whose
    signature is inherited must not get ``size`` twice."""

    class Loose(CursorParams):
        model_config = ConfigDict(extra="allow")

    class Later(CursorParams):
        note: "Undefined | None" = None  # noqa: F821 - resolved later, or never

    loose = list(inspect.signature(Loose).parameters.values())
    assert loose[-1].kind is inspect.Parameter.VAR_KEYWORD
    assert [p.name for p in loose].count("size") == 1
    assert list(inspect.signature(Later).parameters).count("size") == 1
    assert Loose(size=4).page_size == 4


def test_cursor_params_size_attribute_is_deprecated() -> None:
    params = CursorParams(page_size=5)
    with pytest.warns(DeprecationWarning, match="page_size"):
        assert params.size == 5


def test_cursor_length_is_bounded(client: TestClient) -> None:
    response = client.get("/cursor", params={"cursor": "a" * 4096})
    assert response.json() == {"cursor_length": 4096, "page_size": 20}
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


# --- several parameters: every error in one answer -------------------------------------------


@pytest.mark.parametrize(
    ("query", "wrong"),
    [
        pytest.param("sort=bogus&done=maybe", [("sort",), ("done",)], id="sort-and-a-flag"),
        pytest.param("page=0&sort=bogus", [("page",), ("sort",)], id="page-and-sort"),
        pytest.param(
            "page=0&page_size=1000&sort=bogus&done=x",
            [("page",), ("page_size",), ("sort",), ("done",)],
            id="all-four",
        ),
    ],
)
def test_a_bad_model_does_not_hide_the_other_errors(
    query: str, wrong: list[tuple[str, ...]]
) -> None:
    """Declared with Query(), FastAPI validates every parameter and reports all that fail;
    one query model's error must not cut that short (it did, through a hook in __init__)."""
    with TestClient(params_app(Query)) as client:
        response = client.get(f"/page-and-sort?{query}")
    assert response.status_code == 422
    locs = sorted(tuple(error["loc"][1:]) for error in response.json()["data"])
    assert locs == sorted(wrong)


def test_declared_with_depends_a_bad_sort_is_still_a_422() -> None:
    with TestClient(params_app(Depends)) as client:
        response = client.get("/page-and-sort?sort=bogus")
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["data"]] == [["query", "sort"]]
