"""fastkit.db.apaginate / paginate against real SQLite and (when configured) PostgreSQL.

Every test drives one app that serves each endpoint twice: ``/async/...`` through
`Database` and `apaginate`, ``/sync/...`` through `SyncDatabase` and `paginate`, over the
same tables. No ``from __future__ import annotations`` here: the endpoints are built inside
a function, and ``session: adb.Session`` must be evaluated where the local ``adb`` is visible.
"""

import asyncio
import base64
import json
import random
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict
from sqlalchemy import String, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import install_exception_handlers
from fastkit.db import Database, SyncDatabase, apaginate, paginate
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
)
from tests.db_support import Target, target  # noqa: F401


class Base(DeclarativeBase):
    pass


class Player(Base):
    __tablename__ = "player"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    score: Mapped[int]
    nickname: Mapped[str | None] = mapped_column(String(20))


class PlayerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    score: int


ROWS = 57
NAMES = ["ann", "bob", "cat", "dan"]  # plain lowercase: every collation orders them alike
SECRET = "s" * 32
OTHER_SECRET = b"o" * 32
Signed = CursorParams.configure(secret=SECRET)
PlayerSort = SortParams.allow("name", "score", default="-score")
SORT_COLUMNS = {"name": Player.name, "score": Player.score}
ENGINES = ["async", "sync"]

# ORDER BY clauses by the name used in URLs; many duplicate scores and names, so only the
# tie-breaker (the primary key, appended when missing) makes the order total.
ORDERS: dict[str, list[Any]] = {
    "score": [Player.score],
    "-score": [Player.score.desc()],
    "-score,name": [Player.score.desc(), Player.name],
    "name,-score": [Player.name, Player.score.desc()],
    "name": [Player.name],
    "-id": [Player.id.desc()],
    "score,id": [Player.score, Player.id],
    "unordered": [],
    "nickname": [Player.nickname],
}


def cursor_stmt(order: str) -> Any:
    return select(Player).order_by(*ORDERS[order])


def describe(players: Any) -> list[str]:
    return [f"{p.name}#{p.id}" for p in players]


COLUMNS_STMT = select(Player.name, Player.score, Player.id).order_by(Player.score, Player.id)


def pages_stmt(rows: int) -> Any:
    return select(Player).where(Player.id <= rows).order_by(Player.id)


def build_app(adb: Database, sdb: SyncDatabase) -> FastAPI:
    app = FastAPI(lifespan=adb.lifespan)
    install_exception_handlers(app)

    # --- async: Database + apaginate ---

    @app.get("/async/cursor/{order}")
    async def a_cursor(
        order: str, params: Annotated[CursorParams, Depends()], session: adb.Session
    ) -> CursorPage[PlayerOut]:
        return await apaginate(session, cursor_stmt(order), params)

    @app.get("/async/signed/{order}")
    async def a_signed(
        order: str, params: Annotated[Signed, Depends()], session: adb.Session
    ) -> CursorPage[PlayerOut]:
        return await apaginate(session, cursor_stmt(order), params)

    @app.get("/async/columns")
    async def a_columns(
        params: Annotated[CursorParams, Depends()], session: adb.Session
    ) -> CursorPage[dict[str, Any]]:
        return await apaginate(session, COLUMNS_STMT, params)

    @app.get("/async/transformed")
    async def a_transformed(
        params: Annotated[CursorParams, Depends()], session: adb.Session
    ) -> CursorPage[str]:
        stmt = cursor_stmt("-score")
        return await apaginate(session, stmt, params, transformer=describe)

    @app.get("/async/pages")
    async def a_pages(
        params: Annotated[PageParams, Depends()],
        session: adb.Session,
        rows: int = ROWS,
        include_total: bool = True,
    ) -> Page[PlayerOut]:
        stmt = pages_stmt(rows)
        return await apaginate(session, stmt, params, include_total=include_total)

    @app.get("/async/limit-offset")
    async def a_limit_offset(
        params: Annotated[LimitOffsetParams, Depends()],
        session: adb.Session,
        rows: int = ROWS,
        include_total: bool = True,
    ) -> LimitOffsetPage[PlayerOut]:
        stmt = pages_stmt(rows)
        return await apaginate(session, stmt, params, include_total=include_total)

    @app.get("/async/column-pages")
    async def a_column_pages(
        params: Annotated[PageParams, Depends()], session: adb.Session
    ) -> Page[dict[str, Any]]:
        stmt = select(Player.id, Player.name).order_by(Player.id)
        return await apaginate(session, stmt, params)

    @app.get("/async/sorted")
    async def a_sorted(
        sort: Annotated[PlayerSort, Depends()],
        params: Annotated[PageParams, Depends()],
        session: adb.Session,
    ) -> Page[PlayerOut]:
        stmt = select(Player).order_by(*sort.order_by(SORT_COLUMNS), Player.id)
        return await apaginate(session, stmt, params)

    # --- sync: SyncDatabase + paginate ---

    @app.get("/sync/cursor/{order}")
    def s_cursor(
        order: str, params: Annotated[CursorParams, Depends()], session: sdb.Session
    ) -> CursorPage[PlayerOut]:
        return paginate(session, cursor_stmt(order), params)

    @app.get("/sync/signed/{order}")
    def s_signed(
        order: str, params: Annotated[Signed, Depends()], session: sdb.Session
    ) -> CursorPage[PlayerOut]:
        return paginate(session, cursor_stmt(order), params)

    @app.get("/sync/columns")
    def s_columns(
        params: Annotated[CursorParams, Depends()], session: sdb.Session
    ) -> CursorPage[dict[str, Any]]:
        return paginate(session, COLUMNS_STMT, params)

    @app.get("/sync/transformed")
    def s_transformed(
        params: Annotated[CursorParams, Depends()], session: sdb.Session
    ) -> CursorPage[str]:
        return paginate(session, cursor_stmt("-score"), params, transformer=describe)

    @app.get("/sync/pages")
    def s_pages(
        params: Annotated[PageParams, Depends()],
        session: sdb.Session,
        rows: int = ROWS,
        include_total: bool = True,
    ) -> Page[PlayerOut]:
        return paginate(session, pages_stmt(rows), params, include_total=include_total)

    @app.get("/sync/limit-offset")
    def s_limit_offset(
        params: Annotated[LimitOffsetParams, Depends()],
        session: sdb.Session,
        rows: int = ROWS,
        include_total: bool = True,
    ) -> LimitOffsetPage[PlayerOut]:
        return paginate(session, pages_stmt(rows), params, include_total=include_total)

    @app.get("/sync/column-pages")
    def s_column_pages(
        params: Annotated[PageParams, Depends()], session: sdb.Session
    ) -> Page[dict[str, Any]]:
        return paginate(session, select(Player.id, Player.name).order_by(Player.id), params)

    @app.get("/sync/sorted")
    def s_sorted(
        sort: Annotated[PlayerSort, Depends()],
        params: Annotated[PageParams, Depends()],
        session: sdb.Session,
    ) -> Page[PlayerOut]:
        stmt = select(Player).order_by(*sort.order_by(SORT_COLUMNS), Player.id)
        return paginate(session, stmt, params)

    return app


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def sdb(target: Target) -> Iterator[SyncDatabase]:  # noqa: F811
    """57 players with scores 0..5 and four names: many rows share their sort values."""
    db = SyncDatabase(target.sync_url, **target.sync_kwargs)
    db.create_all(Base.metadata)
    rng = random.Random(ROWS)
    with db.session_scope() as session:
        session.add_all(
            Player(
                name=rng.choice(NAMES),
                score=rng.randrange(6),
                nickname=None if i % 4 == 0 else rng.choice(NAMES),
            )
            for i in range(ROWS)
        )
    with db.session_scope() as session:
        assert list(session.scalars(select(Player.id).order_by(Player.id))) == list(
            range(1, ROWS + 1)
        )
    yield db
    db.dispose()


@pytest.fixture
def adb(target: Target) -> Database:  # noqa: F811
    return Database(target.async_url, **target.async_kwargs)


@pytest.fixture
def client(adb: Database, sdb: SyncDatabase) -> Iterator[TestClient]:
    # One portal (one event loop) for the whole test: asyncpg connections belong to it.
    with TestClient(build_app(adb, sdb), raise_server_exceptions=False) as client:
        yield client


def ordered_ids(sdb: SyncDatabase, order: str) -> list[int]:
    """The reference order: the same ORDER BY, then the primary key."""
    with sdb.session_scope() as session:
        return list(session.scalars(select(Player.id).order_by(*ORDERS[order], Player.id)))


def get_ok(client: TestClient, url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def walk_forward(client: TestClient, url: str, size: int) -> list[dict[str, Any]]:
    pages, cursor = [], None
    for _ in range(200):
        page = get_ok(client, url, size=size, cursor=cursor)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError(f"{url}: the walk did not end")


def walk_backward(client: TestClient, url: str, cursor: str, size: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    for _ in range(200):
        page = get_ok(client, url, size=size, cursor=cursor)
        pages.insert(0, page)
        cursor = page["previous_cursor"]
        if cursor is None:
            return pages
    raise AssertionError(f"{url}: the walk did not end")


def ids(pages: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for page in pages for item in page["items"]]


def xfail_for(request: pytest.FixtureRequest, target: Target, bug: Any) -> None:  # noqa: F811
    """Mark a known src bug: ``bug`` is ``(where, reason)``, where "all" or a target kind."""
    if bug is not None and bug[0] in ("all", target.kind):
        request.applymarker(pytest.mark.xfail(reason=f"src bug: {bug[1]}", strict=True))


# --- page / limit-offset totals ------------------------------------------------------------

PAGE_CASES = [
    # rows in the table (ids 1..rows), page, page_size -> item count, pages
    pytest.param(0, 1, 20, 0, 0, id="empty"),
    pytest.param(0, 2, 20, 0, 0, id="empty-page-2"),
    pytest.param(40, 1, 20, 20, 2, id="exact-first"),
    pytest.param(40, 2, 20, 20, 2, id="exact-last"),
    pytest.param(40, 3, 20, 0, 2, id="exact-past-end"),
    pytest.param(57, 3, 20, 17, 3, id="partial-last"),
    pytest.param(57, 1, 100, 57, 1, id="all-in-one"),
    pytest.param(1, 1, 1, 1, 1, id="single"),
]


@pytest.mark.parametrize(("rows", "page", "size", "count", "pages"), PAGE_CASES)
def test_page_totals(
    client: TestClient, rows: int, page: int, size: int, count: int, pages: int
) -> None:
    first = (page - 1) * size + 1
    for engine in ENGINES:
        body = get_ok(client, f"/{engine}/pages", rows=rows, page=page, page_size=size)
        assert [item["id"] for item in body["items"]] == list(range(first, first + count))
        assert {k: v for k, v in body.items() if k != "items"} == {
            "total": rows,
            "page": page,
            "page_size": size,
            "pages": pages,
        }, engine


@pytest.mark.parametrize(
    ("rows", "limit", "offset", "count"),
    [
        pytest.param(0, 20, 0, 0, id="empty"),
        pytest.param(57, 20, 0, 20, id="first"),
        pytest.param(57, 20, 50, 7, id="partial"),
        pytest.param(57, 20, 57, 0, id="past-end"),
        pytest.param(40, 20, 20, 20, id="exact"),
    ],
)
def test_limit_offset_totals(
    client: TestClient, rows: int, limit: int, offset: int, count: int
) -> None:
    for engine in ENGINES:
        body = get_ok(client, f"/{engine}/limit-offset", rows=rows, limit=limit, offset=offset)
        assert [item["id"] for item in body["items"]] == list(range(offset + 1, offset + 1 + count))
        assert (body["total"], body["limit"], body["offset"]) == (rows, limit, offset), engine


def count_statements(engine: Engine) -> dict[str, int]:
    counts = {"count": 0, "all": 0}

    def before_cursor_execute(*args: Any) -> None:
        statement: str = args[2]
        counts["all"] += 1
        counts["count"] += "count(" in statement.lower()

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    return counts


def test_include_total_false_issues_no_count(
    client: TestClient, adb: Database, sdb: SyncDatabase
) -> None:
    engines = {"async": adb.engine.sync_engine, "sync": sdb.engine}
    for engine in ENGINES:
        counts = count_statements(engines[engine])
        for endpoint in ("pages", "limit-offset"):
            counts.update(count=0, all=0)
            body = get_ok(client, f"/{engine}/{endpoint}", include_total="false")
            assert body["total"] is None
            assert body.get("pages", None) is None
            assert len(body["items"]) == 20
            assert counts["count"] == 0, (engine, endpoint)
            assert counts["all"] >= 1  # the listener does see the page's SELECT

            counts.update(count=0, all=0)
            body = get_ok(client, f"/{engine}/{endpoint}")
            assert body["total"] == ROWS
            assert counts["count"] == 1, (engine, endpoint)


def test_page_of_several_columns_holds_dicts(client: TestClient, sdb: SyncDatabase) -> None:
    with sdb.session_scope() as session:
        names = list(session.scalars(select(Player.name).order_by(Player.id)))
    for engine in ENGINES:
        body = get_ok(client, f"/{engine}/column-pages", page=2, page_size=5)
        assert body["items"] == [{"id": i, "name": names[i - 1]} for i in range(6, 11)]
        assert (body["total"], body["pages"]) == (ROWS, 12)


def test_sort_params_drive_the_order_by(client: TestClient, sdb: SyncDatabase) -> None:
    with sdb.session_scope() as session:
        players = list(session.scalars(select(Player)))
    by_name_then_score_desc = [
        p.id for p in sorted(players, key=lambda p: (p.name, -p.score, p.id))
    ]
    by_score_desc = [p.id for p in sorted(players, key=lambda p: (-p.score, p.id))]
    for engine in ENGINES:
        url = f"/{engine}/sorted"
        body = get_ok(client, url, sort="name,-score", page_size=100)
        assert [item["id"] for item in body["items"]] == by_name_then_score_desc
        body = get_ok(client, url, page_size=100)  # the default: -score
        assert [item["id"] for item in body["items"]] == by_score_desc
        response = client.get(url, params={"sort": "nickname"})
        assert response.status_code == 422
        assert "allowed: name, score" in response.json()["data"][0]["msg"]


# --- cursor walks --------------------------------------------------------------------------

WALK_ORDERS = ["score", "-score", "-score,name", "name,-score", "-id", "score,id", "unordered"]


@pytest.mark.parametrize("order", WALK_ORDERS)
@pytest.mark.parametrize("engine", ENGINES)
def test_cursor_walk_forward_and_backward(
    client: TestClient, sdb: SyncDatabase, engine: str, order: str
) -> None:
    expected = ordered_ids(sdb, order)  # "unordered": select(Player) sorts by primary key
    url, size = f"/{engine}/cursor/{order}", 7

    forward = walk_forward(client, url, size)
    assert ids(forward) == expected
    assert [len(p["items"]) for p in forward] == [7] * 8 + [1]
    assert forward[0]["previous_cursor"] is None
    assert all(p["next_cursor"] for p in forward[:-1])
    assert all(p["previous_cursor"] for p in forward[1:])
    assert {p["size"] for p in forward} == {size}

    # Backward from the last page: the pages come back the same, down to the first.
    backward = walk_backward(client, url, forward[-1]["previous_cursor"], size)
    assert ids(backward) + ids(forward[-1:]) == expected
    assert [p["items"] for p in backward] == [p["items"] for p in forward[:-1]]
    assert backward[0]["previous_cursor"] is None
    # And forward again from a page reached backward.
    again = get_ok(client, url, size=size, cursor=backward[2]["next_cursor"])
    assert again["items"] == forward[3]["items"]


@pytest.mark.parametrize(
    ("order", "signature"),
    [
        pytest.param("score", "score,id", id="appended"),
        pytest.param("-score,name", "-score,name,id", id="appended-mixed"),
        pytest.param("score,id", "score,id", id="already-there"),
        pytest.param("-id", "-id", id="descending-key"),
        pytest.param("unordered", "id", id="only-key"),
    ],
)
def test_tie_breaker_is_the_primary_key(client: TestClient, order: str, signature: str) -> None:
    for engine in ENGINES:
        page = get_ok(client, f"/{engine}/cursor/{order}", size=3)
        values, backward = decode_cursor(page["next_cursor"], signature)
        last = page["items"][-1]
        assert values[-1] == last["id"]
        assert backward is False
        if order.lstrip("-").startswith("score"):
            assert values[0] == last["score"]


def test_cursor_over_several_columns_gives_dicts(client: TestClient, sdb: SyncDatabase) -> None:
    with sdb.session_scope() as session:
        expected = [dict(row._mapping) for row in session.execute(COLUMNS_STMT)]
    for engine in ENGINES:
        pages = walk_forward(client, f"/{engine}/columns", 10)
        assert [item for page in pages for item in page["items"]] == expected
        backward = walk_backward(client, f"/{engine}/columns", pages[-1]["previous_cursor"], 10)
        assert [item for page in backward + pages[-1:] for item in page["items"]] == expected


def test_transformer_maps_the_items(client: TestClient, sdb: SyncDatabase) -> None:
    with sdb.session_scope() as session:
        players = session.scalars(cursor_stmt("-score").order_by(Player.id))
        expected = describe(players)
    for engine in ENGINES:
        pages = walk_forward(client, f"/{engine}/transformed", 20)
        assert [item for page in pages for item in page["items"]] == expected


@pytest.mark.parametrize(
    ("order", "ahead", "behind"),
    [
        pytest.param("score", 99, -1, id="ascending"),
        pytest.param("-score", -1, 99, id="descending"),
        pytest.param("-score,name", -1, 99, id="mixed"),
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_inserts_during_a_walk_skip_and_repeat_nothing(
    client: TestClient, sdb: SyncDatabase, engine: str, order: str, ahead: int, behind: int
) -> None:
    original = ordered_ids(sdb, order)
    url = f"/{engine}/cursor/{order}"
    seen: list[int] = []
    inserted_ahead: list[int] = []
    inserted_behind: list[int] = []
    cursor = None
    for _ in range(100):
        page = get_ok(client, url, size=7, cursor=cursor)
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Between two requests, another client inserts rows on both sides of the position,
        # including one with the very sort values of the page's last row.
        last = page["items"][-1]
        with sdb.session_scope() as session:
            rows = [
                Player(name="zed", score=ahead),
                Player(name=last["name"], score=last["score"]),
                Player(name="abe", score=behind),
            ]
            session.add_all(rows)
            session.flush()
            inserted_ahead += [rows[0].id, rows[1].id]
            inserted_behind.append(rows[2].id)
    else:
        raise AssertionError("the walk did not end")

    assert len(seen) == len(set(seen)), "a row was served twice"
    originals = set(original)
    assert [i for i in seen if i in originals] == original  # each once, in order
    assert set(inserted_ahead) <= set(seen)  # rows ahead of the position are served
    assert not set(inserted_behind) & set(seen)  # rows behind it are not


def test_signed_cursor_walk(client: TestClient, sdb: SyncDatabase) -> None:
    expected = ordered_ids(sdb, "-score,name")
    for engine in ENGINES:
        pages = walk_forward(client, f"/{engine}/signed/-score,name", 10)
        assert ids(pages) == expected
        assert all("." in p["next_cursor"] for p in pages[:-1])
        url = f"/{engine}/signed/-score,name"
        backward = walk_backward(client, url, pages[-1]["previous_cursor"], 10)
        assert ids(backward + pages[-1:]) == expected


# --- unusable cursors: 400 in the envelope, never 500 --------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def payload(keys: Any, sort: Any = "score,id", direction: Any = "n", **extra: Any) -> str:
    return b64(json.dumps({"k": keys, "o": sort, "d": direction, **extra}).encode())


KEYS = [["i", 2], ["i", 10]]  # a well-formed key for ORDER BY score (signature "score,id")
NESTED_TOO_DEEP = b64(b"[" * 3000)
LONE_SURROGATE = b64(b'{"k":[["s","\\ud800"],["i",1]],"o":"name,id","d":"n"}')
VALID = encode_cursor([2, 10], "score,id")

GARBLED = [
    # order, cursor, message fragment (None: any "Invalid cursor: ..."), known bug
    pytest.param("score", "!!!", "not base64url", None, id="punctuation"),
    pytest.param("score", "é", "not base64url", None, id="non-ascii"),
    pytest.param("score", "abc def", "not base64url", None, id="space"),
    pytest.param("score", "a.b.c", None, None, id="dots"),
    pytest.param("score", VALID[:-7], "cannot be read", None, id="truncated"),
    pytest.param("score", b64(random.Random(1).randbytes(48)), "cannot be read", None, id="random"),
    pytest.param("score", b64(b"hello, world"), "cannot be read", None, id="not-json"),
    pytest.param("score", b64(b"\xff\xfe{}"), "cannot be read", None, id="not-utf8"),
    pytest.param("score", b64(b"[1, 2]"), "cannot be read", None, id="json-list"),
    pytest.param("score", b64(b'"score,id"'), "cannot be read", None, id="json-string"),
    pytest.param("score", b64(b"null"), "cannot be read", None, id="json-null"),
    pytest.param("score", b64(b'{"k": []}'), "cannot be read", None, id="missing-members"),
    pytest.param("score", payload(KEYS, x=1), "cannot be read", None, id="extra-member"),
    pytest.param("score", payload({"score": 2}), "cannot be read", None, id="keys-not-list"),
    pytest.param("score", payload(KEYS, direction="x"), "cannot be read", None, id="direction"),
    pytest.param("score", payload([2, 10]), "value cannot be read", None, id="untagged"),
    pytest.param("score", payload([["zz", 2], ["i", 10]]), "value", None, id="unknown-tag"),
    pytest.param("score", payload([["i"], ["i", 10]]), "value", None, id="tag-without-value"),
    pytest.param("score", payload([["i", 2, 3], ["i", 10]]), "value", None, id="extra-value"),
    pytest.param("score", payload([["dt", "noon"], ["i", 10]]), "value", None, id="bad-datetime"),
    pytest.param("score", payload([["dec", "x"], ["i", 10]]), "value", None, id="bad-decimal"),
    pytest.param("score", payload([["u", "x"], ["i", 10]]), "value", None, id="bad-uuid"),
    pytest.param("score", payload([["i", "2"], ["i", 10]]), "value", None, id="mistagged-str"),
    pytest.param("score", payload([["i", 2.5], ["i", 10]]), "value", None, id="mistagged-float"),
    pytest.param("score", encode_cursor(["2", 10], "score,id"), "wrong type", None, id="str-int"),
    pytest.param("score", encode_cursor([2.5, 10], "score,id"), "wrong type", None, id="float"),
    pytest.param("score", encode_cursor([True, 10], "score,id"), "wrong type", None, id="bool"),
    pytest.param("name", encode_cursor([3, 10], "name,id"), "wrong type", None, id="int-for-str"),
    pytest.param("score", encode_cursor([2], "score,id"), "sort order", None, id="too-few-keys"),
    pytest.param("score", encode_cursor([2, 1, 0], "score,id"), "sort order", None, id="too-many"),
    pytest.param("score", encode_cursor([2, 10], "-score,id"), "sort order", None, id="foreign"),
    pytest.param("score", encode_cursor([2], "score"), "sort order", None, id="no-tie-breaker"),
    pytest.param("score", payload(KEYS, sort=["score", "id"]), "sort order", None, id="sort-list"),
    pytest.param(
        "score", encode_cursor([2, 10], "score,id", secret=b"k" * 32), None, None, id="signed"
    ),
    pytest.param(
        "score",
        NESTED_TOO_DEEP,
        "cannot be read",
        None,
        id="nested-too-deep",
    ),
    pytest.param(
        "name",
        LONE_SURROGATE,
        "value",
        None,
        id="lone-surrogate",
    ),
]


@pytest.mark.parametrize(("order", "cursor", "reason", "bug"), GARBLED)
def test_unusable_cursor_is_400(
    client: TestClient,
    request: pytest.FixtureRequest,
    target: Target,  # noqa: F811
    order: str,
    cursor: str,
    reason: str | None,
    bug: Any,
) -> None:
    xfail_for(request, target, bug)
    for engine in ENGINES:
        response = client.get(f"/{engine}/cursor/{order}", params={"cursor": cursor})
        assert response.status_code == 400, (engine, response.text)
        body = response.json()
        assert body["message"].startswith("Invalid cursor: "), body
        assert reason is None or reason in body["message"], body
        assert (body["code"], body["data"]) == (400, None)


@pytest.mark.parametrize(
    ("order", "cursor", "bug"),
    [
        pytest.param("score", encode_cursor([None, 10], "score,id"), None, id="null-uniform"),
        pytest.param(
            "-score,name",
            encode_cursor([None, "ann", 10], "-score,name,id"),
            None,
            id="null-mixed",
        ),
        pytest.param(
            "score",
            encode_cursor([2**63, 10], "score,id"),
            None,
            id="beyond-int64",
        ),
        pytest.param(
            "-score,name",
            encode_cursor([2, "ann", 2**31], "-score,name,id"),
            None,
            id="beyond-int32",
        ),
        pytest.param(
            "name",
            encode_cursor(["a\x00", 10], "name,id"),
            None,
            id="nul-character",
        ),
    ],
)
def test_cursor_values_the_database_cannot_take_are_not_500(
    client: TestClient,
    request: pytest.FixtureRequest,
    target: Target,  # noqa: F811
    order: str,
    cursor: str,
    bug: Any,
) -> None:
    # Well-formed cursors for the right sort, with values no real row has: an empty page
    # or a 400 are both fine, a 500 is not.
    xfail_for(request, target, bug)
    for engine in ENGINES:
        response = client.get(f"/{engine}/cursor/{order}", params={"cursor": cursor})
        assert response.status_code in (200, 400), (engine, response.text)


def flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


def token(cursor: str) -> str:
    return cursor.partition(".")[0]


def signature(cursor: str) -> str:
    return cursor.partition(".")[2]


TAMPERED: list[Any] = [
    pytest.param(lambda c: flip(c, 3), id="payload-char-flipped"),
    pytest.param(lambda c: flip(c, len(token(c)) - 2), id="payload-end-flipped"),
    pytest.param(lambda c: flip(c, len(token(c)) + 5), id="signature-char-flipped"),
    pytest.param(lambda c: token(c), id="signature-dropped"),
    pytest.param(lambda c: token(c) + ".", id="signature-empty"),
    pytest.param(lambda c: c[:-4], id="signature-truncated"),
    pytest.param(lambda c: c + "AAAA", id="signature-extended"),
    pytest.param(lambda c: token(c) + ".!!!", id="signature-garbage"),
    pytest.param(lambda c: signature(c) + "." + token(c), id="swapped"),
    pytest.param(lambda c: encode_cursor([2, 10], "score,id"), id="unsigned"),
    pytest.param(
        lambda c: encode_cursor([2, 10], "score,id", secret=OTHER_SECRET), id="other-secret"
    ),
    pytest.param(
        lambda c: token(encode_cursor([0, 1], "score,id")) + "." + signature(c),
        id="forged-payload",
    ),
]


@pytest.mark.parametrize("mutate", TAMPERED)
def test_tampered_signed_cursor_is_400(client: TestClient, mutate: Callable[[str], str]) -> None:
    for engine in ENGINES:
        url = f"/{engine}/signed/score"
        good = get_ok(client, url, size=5)["next_cursor"]
        assert get_ok(client, url, cursor=good)["items"]  # the untouched cursor works
        bad = mutate(good)
        assert bad != good
        response = client.get(url, params={"cursor": bad})
        assert response.status_code == 400, (engine, bad, response.text)
        body = response.json()
        assert (body["code"], body["data"]) == (400, None)
        assert body["message"].startswith("Invalid cursor: ")


def test_cursor_from_another_sort_is_400(client: TestClient) -> None:
    for engine in ENGINES:
        plain = get_ok(client, f"/{engine}/cursor/score", size=5)["next_cursor"]
        signed = get_ok(client, f"/{engine}/signed/score", size=5)["next_cursor"]
        for url, cursor, reason in [
            (f"/{engine}/cursor/-score", plain, "another sort order"),
            (f"/{engine}/cursor/name", plain, "another sort order"),
            (f"/{engine}/cursor/-score,name", plain, "another sort order"),
            (f"/{engine}/signed/-score", signed, "another sort order"),
            (f"/{engine}/signed/score", plain, "signature"),
        ]:
            response = client.get(url, params={"cursor": cursor})
            assert response.status_code == 400, (url, response.text)
            assert response.json()["message"].startswith("Invalid cursor: ")
            assert reason in response.json()["message"]
        # ORDER BY score and ORDER BY score, id are the same order: the cursor carries over.
        page = get_ok(client, f"/{engine}/cursor/score,id", size=5, cursor=plain)
        assert page["items"] == get_ok(client, f"/{engine}/cursor/score", cursor=plain)["items"][:5]


# --- statements cursor pagination cannot serve ---------------------------------------------


def run_both(adb: Database, sdb: SyncDatabase, stmt: Any, params: Any) -> tuple[Any, Any]:
    """The page from `apaginate` (async) and from `paginate` (sync), or the raised errors."""

    async def run_async() -> Any:
        try:
            async with adb.session_scope() as session:
                return await apaginate(session, stmt, params)
        except (ValueError, InvalidCursor) as error:
            return error
        finally:
            await adb.dispose()  # close the pool on the loop that opened it

    def run_sync() -> Any:
        try:
            with sdb.session_scope() as session:
                return paginate(session, stmt, params)
        except (ValueError, InvalidCursor) as error:
            return error

    return asyncio.run(run_async()), run_sync()


def test_cursor_needs_an_order_to_page_columns(adb: Database, sdb: SyncDatabase) -> None:
    for result in run_both(adb, sdb, select(Player.name, Player.score), CursorParams()):
        assert isinstance(result, ValueError)
        assert "needs an ORDER BY" in str(result)


def test_distinct_columns_get_no_hidden_key(sdb: SyncDatabase) -> None:
    # DISTINCT rows are not the entity's rows: a hidden id would bring duplicates back.
    stmt = select(Player.name).distinct().order_by(Player.name)
    assert walk_direct(sdb, stmt, 3) == sorted(NAMES)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(Player.score * 2, id="expression"),
        pytest.param((Player.score * 2).label("double_score"), id="labelled"),
        pytest.param((Player.score * 2).label("double_score").desc(), id="labelled-desc"),
    ],
)
def test_cursor_sort_key_must_be_a_column(adb: Database, sdb: SyncDatabase, key: Any) -> None:
    stmt = select(Player).order_by(key)
    for result in run_both(adb, sdb, stmt, CursorParams()):
        assert isinstance(result, ValueError)
        assert "Cursor pagination sorts by table columns" in str(result)


def walk_direct(sdb: SyncDatabase, stmt: Any, size: int) -> list[Any]:
    items: list[Any] = []
    cursor = None
    for _ in range(100):
        with sdb.session_scope() as session:
            page = paginate(session, stmt, CursorParams(cursor=cursor, size=size))
            items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("the walk did not end")


def test_multi_column_select_with_duplicate_keys_skips_nothing(sdb: SyncDatabase) -> None:
    # The columns all belong to Player: its primary key breaks the ties, unselected.
    stmt = select(Player.name, Player.score).order_by(Player.score)
    items = walk_direct(sdb, stmt, 7)
    assert len(items) == ROWS
    with sdb.session_scope() as session:
        expected = [tuple(r) for r in session.execute(stmt.order_by(Player.id))]
    # Every row exactly once, in score order, ties by id.
    assert [(item["name"], item["score"]) for item in items] == expected
    assert set(items[0]) == {"name", "score"}  # the hidden key is not in the items


def test_nullable_sort_key_is_refused_loudly(sdb: SyncDatabase) -> None:
    # A keyset cannot compare NULLs: rather than silently dropping rows, a page whose
    # boundary row has a NULL key is a server error naming the sort.
    with pytest.raises(ValueError, match="NOT NULL sort keys"):
        walk_direct(sdb, cursor_stmt("nickname"), 7)


def test_huge_page_or_offset_is_422_not_500(client: TestClient) -> None:
    # Beyond 64 bits the drivers cannot bind the OFFSET: bounded params answer 422 first.
    for engine in ENGINES:
        for url, field, value in [
            (f"/{engine}/pages", "page", 2**64),
            (f"/{engine}/limit-offset", "offset", 2**63),
        ]:
            response = client.get(url, params={field: value})
            assert response.status_code == 422, (url, response.text)
            assert response.json()["data"][0]["loc"] == ["query", field]
