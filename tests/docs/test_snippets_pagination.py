"""What docs/pagination.md claims, run against its snippets on real SQLite files."""

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from sqlalchemy import String, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import Envelope, install_exception_handlers, ok
from fastkit.db import SyncDatabase, apaginate
from fastkit.db import paginate as paginate_query
from fastkit.pagination import (
    CursorParams,
    Page,
    PageParams,
    paginate,
)
from tests.docs._snippets import load


def schema_ref(openapi: dict[str, Any], path: str) -> str:
    content = openapi["paths"][path]["get"]["responses"]["200"]["content"]
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def validation_error(*errors: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "code": 422,
        "message": "Request validation failed",
        "data": [{"loc": ["query", name], "msg": msg, "type": kind} for name, msg, kind in errors],
    }


OUT_OF_RANGE = validation_error(
    ("page", "Input should be greater than or equal to 1", "greater_than_equal"),
    ("page_size", "Input should be less than or equal to 100", "less_than_equal"),
)


@pytest.fixture
def snippet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    monkeypatch.delenv("CURSOR_SECRET", raising=False)
    return tmp_path


def run(module: ModuleType) -> Iterator[TestClient]:
    with TestClient(module.app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def memory() -> Iterator[TestClient]:
    yield from run(load("pagination_memory"))


@pytest.fixture
def sql_module(snippet_env: Path) -> ModuleType:
    return load("pagination_sql")


@pytest.fixture
def sql(sql_module: ModuleType) -> Iterator[TestClient]:
    yield from run(sql_module)


class Statements:
    """The SQL statements an engine runs, with their parameters."""

    def __init__(self, module: ModuleType) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        event.listen(module.db.engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        self.seen.append((" ".join(statement.split()), tuple(params)))

    def during(
        self, client: TestClient, url: str, **params: Any
    ) -> list[tuple[str, tuple[Any, ...]]]:
        self.seen.clear()
        assert client.get(url, params=params).status_code == 200
        return list(self.seen)


# --- lists in memory -----------------------------------------------------------------------


def test_memory_pages(memory: TestClient) -> None:
    second = memory.get("/items", params={"page": 2, "page_size": 2})
    assert second.status_code == 200
    assert second.json() == {
        "code": 200,
        "message": "success",
        "data": {
            "items": [{"id": 3, "name": "cap"}, {"id": 4, "name": "pad"}],
            "total": 5,
            "page": 2,
            "page_size": 2,
            "pages": 3,
        },
    }

    window = memory.get("/items/window", params={"limit": 2, "offset": 4}).json()
    assert window == {
        "code": 200,
        "message": "success",
        "data": {"items": [{"id": 5, "name": "tape"}], "total": 5, "limit": 2, "offset": 4},
    }

    names = memory.get("/items/names").json()
    assert names == {
        "code": 200,
        "message": "success",
        "data": {
            "items": ["pen", "ink", "cap"],
            "total": 5,
            "page": 1,
            "page_size": 3,
            "pages": 2,
        },
    }

    past_the_end = memory.get("/items", params={"page": 9}).json()["data"]
    assert past_the_end == {"items": [], "total": 5, "page": 9, "page_size": 20, "pages": 1}


def test_out_of_range_is_422_not_clamped(memory: TestClient) -> None:
    response = memory.get("/items", params={"page": 0, "page_size": 500})
    assert response.status_code == 422
    assert response.json() == OUT_OF_RANGE

    window = memory.get("/items/window", params={"limit": 0, "offset": -1})  # under Query()
    assert window.status_code == 422
    assert window.json() == validation_error(
        ("limit", "Input should be greater than or equal to 1", "greater_than_equal"),
        ("offset", "Input should be greater than or equal to 0", "greater_than_equal"),
    )

    too_deep = memory.get("/items", params={"page": 1_000_001})
    assert too_deep.json()["data"] == [
        {
            "loc": ["query", "page"],
            "msg": "Input should be less than or equal to 1000000",
            "type": "less_than_equal",
        }
    ]
    assert memory.get("/items", params={"page": 1_000_000}).status_code == 200
    offsets = [
        memory.get("/items/window", params={"offset": n}) for n in (100_000_000, 100_000_001)
    ]
    assert [response.status_code for response in offsets] == [200, 422]

    configured = memory.get("/items/names", params={"page_size": 11})
    assert configured.status_code == 422
    error = {
        "loc": ["query", "page_size"],
        "msg": "Input should be less than or equal to 10",
        "type": "less_than_equal",
    }
    assert configured.json()["data"] == [error]


def test_subclass_form_for_type_checkers_has_the_configured_bounds() -> None:
    # The note's form: a subclass written out, as configure() makes it, under Query().
    class NamePages(PageParams):
        page_size: int = Field(3, ge=1, le=10, description="Items per page.")

    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/names")
    async def names(params: Annotated[NamePages, Query()]) -> Page[int]:
        return paginate(list(range(5)), params)

    client = TestClient(app)
    assert client.get("/names").json()["page_size"] == 3
    assert client.get("/names", params={"page_size": 11}).status_code == 422


# --- pages in the envelope -----------------------------------------------------------------


def test_envelope_route_documents_the_page(memory: TestClient) -> None:
    openapi = memory.get("/openapi.json").json()
    assert schema_ref(openapi, "/items") == "Envelope_Page_Item__"
    assert schema_ref(openapi, "/items/window") == "Envelope_LimitOffsetPage_Item__"
    schemas = openapi["components"]["schemas"]
    data = schemas["Envelope_Page_Item__"]["properties"]["data"]["anyOf"]
    assert {"$ref": "#/components/schemas/Page_Item_"} in data
    items = schemas["Page_Item_"]["properties"]["items"]["items"]
    assert items == {"$ref": "#/components/schemas/Item"}
    assert set(schemas["Page_Item_"]["properties"]) == {
        "items",
        "total",
        "page",
        "page_size",
        "pages",
    }


class Item(BaseModel):
    id: int
    name: str


def test_ok_around_a_page() -> None:
    app = FastAPI()

    @app.get("/items")
    async def items(params: Annotated[PageParams, Query()]) -> Envelope[Page[Item]]:
        return ok(paginate([Item(id=1, name="pen")], params))

    client = TestClient(app)
    assert client.get("/items").json() == {
        "code": 200,
        "message": "success",
        "data": {
            "items": [{"id": 1, "name": "pen"}],
            "total": 1,
            "page": 1,
            "page_size": 20,
            "pages": 1,
        },
    }
    assert schema_ref(client.get("/openapi.json").json(), "/items") == "Envelope_Page_Item__"


def test_schema_names_of_the_three_pages(sql: TestClient) -> None:
    openapi = sql.get("/openapi.json").json()
    assert schema_ref(openapi, "/books") == "Page_BookOut_"
    assert schema_ref(openapi, "/books/titles") == "LimitOffsetPage_BookTitle_"
    assert schema_ref(openapi, "/books/feed") == "CursorPage_BookOut_"
    cursor_page = openapi["components"]["schemas"]["CursorPage_BookOut_"]
    assert set(cursor_page["properties"]) == {
        "items",
        "next_cursor",
        "previous_cursor",
        "page_size",
        "size",
    }


# --- SQLAlchemy queries --------------------------------------------------------------------


def test_sql_pages(sql: TestClient) -> None:
    first = sql.get("/books", params={"page_size": 2}).json()
    assert first == {
        "items": [
            {"id": 1, "title": "Dune", "year": 1965},
            {"id": 4, "title": "Kindred", "year": 1979},
        ],
        "total": 5,
        "page": 1,
        "page_size": 2,
        "pages": 3,
    }

    by_year = sql.get("/books", params={"sort": "-year,title", "page": 2, "page_size": 2}).json()
    assert by_year == {
        "items": [
            {"id": 3, "title": "Ubik", "year": 1969},
            {"id": 1, "title": "Dune", "year": 1965},
        ],
        "total": 5,
        "page": 2,
        "page_size": 2,
        "pages": 3,
    }

    titles = sql.get("/books/titles", params={"limit": 2, "offset": 1}).json()
    assert titles == {
        "items": [{"id": 2, "title": "Solaris"}, {"id": 3, "title": "Ubik"}],
        "total": None,
        "limit": 2,
        "offset": 1,
    }


def test_one_count_without_order_by(sql_module: ModuleType, sql: TestClient) -> None:
    statements = Statements(sql_module)
    count, rows = statements.during(sql, "/books", sort="-year", page=2, page_size=2)
    assert count[0].startswith("SELECT count(*) AS count_1 FROM (SELECT books.id")
    assert "ORDER BY" not in count[0]
    assert rows[0].endswith("ORDER BY books.year DESC, books.id LIMIT ? OFFSET ?")
    assert rows[1] == (2, 2)

    # include_total=False: the page query alone.
    (only,) = statements.during(sql, "/books/titles")
    assert "count(" not in only[0]


def test_sort_whitelist(sql_module: ModuleType, sql: TestClient) -> None:
    unknown = sql.get("/books", params={"sort": "price"})
    assert unknown.status_code == 422
    assert unknown.json() == validation_error(
        ("sort", "Value error, cannot sort by 'price'; allowed: title, year", "value_error")
    )

    malformed = "Value error, sort must be comma-separated field names, '-' for descending; "
    for bad, message in [
        ("title; DROP TABLE books", malformed + "allowed: title, year"),
        ("-year,,title", malformed + "allowed: title, year"),
        ("year,year", "Value error, 'year' is listed twice"),
    ]:
        response = sql.get("/books", params={"sort": bad})
        assert response.status_code == 422, bad
        assert response.json()["data"] == [
            {"loc": ["query", "sort"], "msg": message, "type": "value_error"}
        ]

    sort = sql_module.BookSort(sort="-year,title")
    assert sort.fields == [("year", True), ("title", False)]
    assert sql_module.BookSort().fields == [("title", False)]  # the default


def test_items_kinds_and_transformer(sql_module: ModuleType, sql: TestClient) -> None:
    book = sql_module.Book

    async def one_page(stmt: Any, params: Any, **kwargs: Any) -> Any:
        async with sql_module.db.session_scope() as session:
            return await apaginate(session, stmt, params, **kwargs)

    call = sql.portal.call  # type: ignore[union-attr]
    params = PageParams(page_size=2)
    entities = call(one_page, select(book).order_by(book.id), params)
    assert [type(item) for item in entities.items] == [book, book]
    values = call(one_page, select(book.title).order_by(book.id), params)
    assert values.items == ["Dune", "Solaris"]
    dicts = call(one_page, select(book.id, book.title).order_by(book.id), params)
    assert dicts.items == [{"id": 1, "title": "Dune"}, {"id": 2, "title": "Solaris"}]

    async def transformed() -> Any:
        stmt = select(book).order_by(book.id)
        return await one_page(stmt, params, transformer=lambda books: [b.title for b in books])

    titles = call(transformed)
    assert titles.items == ["Dune", "Solaris"]

    # Cursors: select(Model) without ORDER BY pages by primary key; a multi-column select
    # without one is refused.
    by_key = call(one_page, select(book), CursorParams(page_size=3))
    assert [b.id for b in by_key.items] == [1, 2, 3]
    with pytest.raises(ValueError, match="needs an ORDER BY ending in a unique column"):
        call(one_page, select(book.id, book.title), CursorParams())


class SyncBase(DeclarativeBase):
    pass


class Note(SyncBase):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


class NoteOut(BaseModel):
    id: int
    text: str


def test_sync_paginate(tmp_path: Path) -> None:
    # The page's SyncDatabase example, as written there.
    db = SyncDatabase(f"sqlite:///{tmp_path / 'sync.db'}")
    db.create_all(SyncBase.metadata)
    with db.session_scope() as session:
        session.add_all(Note(text=f"note {n}") for n in range(1, 4))
    app = FastAPI()

    @app.get("/notes")
    def list_notes(params: Annotated[PageParams, Query()], session: db.Session) -> Page[NoteOut]:
        return paginate_query(session, select(Note).order_by(Note.id), params)

    try:
        body = TestClient(app).get("/notes", params={"page": 2, "page_size": 2}).json()
    finally:
        db.dispose()
    assert body == {
        "items": [{"id": 3, "text": "note 3"}],
        "total": 3,
        "page": 2,
        "page_size": 2,
        "pages": 2,
    }


# --- cursors -------------------------------------------------------------------------------

FIRST_CURSOR = "eyJrIjpbWyJzIiwiS2luZHJlZCJdLFsiaSIsNF1dLCJvIjoidGl0bGUsaWQiLCJkIjoibiJ9"


def titles_of(body: dict[str, Any]) -> list[str]:
    return [item["title"] for item in body["items"]]


def test_cursor_walk(sql: TestClient) -> None:
    first = sql.get("/books/feed", params={"page_size": 2}).json()
    assert first == {
        "items": [
            {"id": 1, "title": "Dune", "year": 1965},
            {"id": 4, "title": "Kindred", "year": 1979},
        ],
        "next_cursor": FIRST_CURSOR,
        "previous_cursor": None,
        "page_size": 2,
        "size": 2,  # the deprecated name, until 0.3
    }

    second = sql.get("/books/feed", params={"page_size": 2, "cursor": first["next_cursor"]}).json()
    assert titles_of(second) == ["Solaris", "The Left Hand of Darkness"]
    assert second["previous_cursor"] is not None

    third = sql.get("/books/feed", params={"page_size": 2, "cursor": second["next_cursor"]}).json()
    assert titles_of(third) == ["Ubik"]
    assert third["next_cursor"] is None

    back = sql.get(
        "/books/feed", params={"page_size": 2, "cursor": third["previous_cursor"]}
    ).json()
    assert titles_of(back) == ["Solaris", "The Left Hand of Darkness"]
    first_again = sql.get("/books/feed", params={"page_size": 2, "cursor": back["previous_cursor"]})
    assert titles_of(first_again.json()) == ["Dune", "Kindred"]
    assert first_again.json()["previous_cursor"] is None

    # The page size may change between pages; the sort may not.
    bigger = sql.get("/books/feed", params={"page_size": 5, "cursor": first["next_cursor"]}).json()
    assert titles_of(bigger) == ["Solaris", "The Left Hand of Darkness", "Ubik"]


def test_cursor_query_is_keyset(sql_module: ModuleType, sql: TestClient) -> None:
    statements = Statements(sql_module)
    ((query, params),) = statements.during(sql, "/books/feed", page_size=2, cursor=FIRST_CURSOR)
    assert "count(" not in query
    # The endpoint's own ORDER BY, its tie-breaker (the primary key) appended.
    keyset = r"WHERE \(books\.title, books\.id\) > \(\?, \?\) "
    assert re.search(keyset + r"ORDER BY books\.title ASC, books\.id( ASC)? ", query), query
    assert params == ("Kindred", 4, 3, 0)  # LIMIT page_size + 1, and nothing skipped

    first = sql.get("/books/feed", params={"page_size": 2, "sort": "-year"}).json()
    assert titles_of(first) == ["Kindred", "Ubik"]
    ((mixed, _),) = statements.during(
        sql, "/books/feed", page_size=2, sort="-year", cursor=first["next_cursor"]
    )
    assert "WHERE books.year < ? OR books.year = ? AND books.id > ?" in mixed
    rest = sql.get("/books/feed", params={"sort": "-year", "cursor": first["next_cursor"]})
    assert titles_of(rest.json()) == ["The Left Hand of Darkness", "Dune", "Solaris"]


def encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_CURSORS = {
    "not-base64url": ("not-a-cursor!", {}, "Invalid cursor: not base64url."),
    "not-a-cursor": ("bm90IGpzb24", {}, "Invalid cursor: cannot be read."),
    "unreadable-value": (
        encode({"k": [["s", 1], ["i", 4]], "o": "title,id", "d": "n"}),
        {},
        "Invalid cursor: a value cannot be read.",
    ),
    "wrong-type": (
        encode({"k": [["i", 5], ["i", 4]], "o": "title,id", "d": "n"}),
        {},
        "Invalid cursor: a value has the wrong type.",
    ),
    "another-sort": (
        FIRST_CURSOR,
        {"sort": "-year"},
        "Invalid cursor: it was made for another sort order; start over.",
    ),
}


@pytest.mark.parametrize(("cursor", "extra", "message"), BAD_CURSORS.values(), ids=BAD_CURSORS)
def test_bad_cursor_is_400(
    sql: TestClient, cursor: str, extra: dict[str, str], message: str
) -> None:
    response = sql.get("/books/feed", params={"cursor": cursor, **extra})
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message, "data": None}


# --- signed cursors ------------------------------------------------------------------------


@pytest.fixture
def signed(snippet_env: Path) -> Iterator[TestClient]:
    yield from run(load("pagination_signed"))


def ids_of(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["items"]]


def test_signed_cursor_walk(signed: TestClient) -> None:
    first = signed.get("/events", params={"page_size": 3}).json()
    assert ids_of(first) == [12, 11, 10]
    assert first["items"][0] == {"id": 12, "at": "2025-01-01T09:12:00", "name": "event 12"}
    assert first["previous_cursor"] is None
    payload, signature = first["next_cursor"].split(".")
    assert payload
    assert signature
    nxt = signed.get("/events", params={"page_size": 3, "cursor": first["next_cursor"]}).json()
    assert ids_of(nxt) == [9, 8, 7]
    back = signed.get("/events", params={"page_size": 3, "cursor": nxt["previous_cursor"]}).json()
    assert ids_of(back) == [12, 11, 10]


def tamper(cursor: str) -> str:
    payload, signature = cursor.split(".")
    # Move the boundary to event 1 and keep the old signature.
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["k"][1] = ["i", 1]
    return f"{encode(data)}.{signature}"


def test_signed_cursor_refuses_forgeries(signed: TestClient) -> None:
    cursor = signed.get("/events", params={"page_size": 3}).json()["next_cursor"]
    payload, signature = cursor.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forgeries = {
        "tampered": tamper(cursor),
        "one-character": f"{payload}.{flipped}",
        "unsigned": payload,
    }
    for name, forged in forgeries.items():
        response = signed.get("/events", params={"cursor": forged})
        assert response.status_code == 400, name
        assert response.json() == {
            "code": 400,
            "message": "Invalid cursor: the signature does not match.",
            "data": None,
        }


def test_signed_sizes(signed: TestClient) -> None:
    assert len(signed.get("/events").json()["items"]) == 10  # default_size=10
    assert signed.get("/events", params={"page_size": 51}).status_code == 422  # max_size=50


def test_workers_need_the_same_secret(snippet_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def first_cursor(secret: str) -> tuple[str, ModuleType]:
        monkeypatch.setenv("CURSOR_SECRET", secret)
        module = load("pagination_signed")
        with TestClient(module.app) as client:
            return client.get("/events", params={"page_size": 3}).json()["next_cursor"], module

    cursor, _ = first_cursor("a" * 64)
    _, same = first_cursor("a" * 64)
    _, other = first_cursor("b" * 64)
    with TestClient(same.app) as client:
        accepted = client.get("/events", params={"page_size": 3, "cursor": cursor})
    assert ids_of(accepted.json()) == [9, 8, 7]
    with TestClient(other.app, raise_server_exceptions=False) as client:
        assert client.get("/events", params={"cursor": cursor}).status_code == 400


def test_other_sources_page_through_the_raw_params() -> None:
    with TestClient(load("pagination_raw").app) as client:
        last = client.get("/events", params={"limit": 5, "offset": 40})
        assert last.json() == {
            "items": ["event 41", "event 42"],
            "total": 42,
            "limit": 5,
            "offset": 40,
        }
        assert client.get("/events", params={"limit": 0}).status_code == 422
