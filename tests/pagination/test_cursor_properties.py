"""Cursors: every valid value round-trips; nothing a client sends back gets past a 400.

`encode_cursor` / `decode_cursor` directly, then through a real app whose endpoints page a
table with a column of each cursor type (async `Database` and `SyncDatabase`; SQLite, and
PostgreSQL when FASTKIT_TEST_POSTGRES_URL is set) with `CursorParams`, plain and signed.

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import base64
import datetime as dt
import decimal
import enum
import hashlib
import hmac
import itertools
import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Enum, Numeric, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import install_exception_handlers
from fastkit.db import Database, SyncDatabase, apaginate, paginate
from fastkit.pagination import CursorPage, CursorParams, InvalidCursor, decode_cursor, encode_cursor
from tests.db_support import database_target
from tests.property_support import (
    BASE64URL,
    assert_error_envelope,
    examples,
    mutations,
    single_edits,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# --- values a cursor carries (docs/pagination.md, "NULL and other sort values") ------------

# Fixed offsets, to the second (historical local mean times have seconds, e.g. +00:19:32);
# CPython 3.11's fromisoformat() reads a sub-second offset of under a second as UTC, and
# no zone or database has one.
OFFSETS = st.integers(-86399, 86399).map(lambda s: dt.timezone(dt.timedelta(seconds=s)))
DATETIMES = st.datetimes(timezones=st.none() | st.just(dt.timezone.utc) | OFFSETS)
# Text a database stores and binds: any character but NUL (PostgreSQL refuses it, and
# decode_cursor refuses it by design; see test_nul_text_is_refused_not_500) and lone
# surrogates (no driver decodes one from the database's UTF-8).
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
SORT_KEY_VALUES = st.one_of(
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, 2**53 + 1, -(2**31) - 1]),
    st.floats(),
    st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 5e-324, 1.7976931348623157e308]),
    TEXT,
    DATETIMES,
    st.dates(),
    st.uuids(),
    st.decimals(),
    st.sampled_from(Color),
    st.sampled_from(Level),
)
CURSOR_VALUES = st.none() | SORT_KEY_VALUES  # None encodes, but decoding with types refuses it
SORTS = st.text()  # the sort signature is opaque to the cursor
SECRETS = st.none() | st.binary(min_size=32, max_size=64)


def plain(value: Any) -> Any:
    """What decoding without ``types`` gives back: enum members as their values."""
    return value.value if isinstance(value, enum.Enum) else value


def same(a: Any, b: Any) -> bool:
    """Equal, of exactly the same type, and alike where ``==`` is too lenient or too strict."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)  # NaN != NaN, and 1.0 == 1.00
    if isinstance(a, dt.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def assert_same_values(decoded: list[Any], expected: list[Any]) -> None:
    assert len(decoded) == len(expected), (decoded, expected)
    for got, want in zip(decoded, expected, strict=True):
        assert same(got, want), (got, want)


def type_of(value: Any) -> type:
    """The column type a value comes from (an enum member: its enum)."""
    return type(value)


# --- well-formed results -------------------------------------------------------------------

DECODED_TYPES = (
    type(None),
    bool,
    int,
    float,
    str,
    dt.datetime,
    dt.date,
    uuid.UUID,
    decimal.Decimal,
)


def assert_decodable_value(value: Any) -> None:
    """A value a cursor may decode to: one of the documented types, bindable as is."""
    assert type(value) in DECODED_TYPES, repr(value)
    if type(value) is int:
        assert INT64_MIN <= value <= INT64_MAX, value
    if isinstance(value, str):
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates


def assert_well_formed(result: Any, types: list[type] | None = None) -> None:
    """``(values, backward)`` as `decode_cursor` documents it, typed as asked."""
    assert type(result) is tuple, result
    values, backward = result
    assert type(values) is list, result
    assert type(backward) is bool, result
    if types is None:
        for value in values:
            assert_decodable_value(value)
        return
    assert len(values) == len(types), (values, types)
    for value, expected in zip(values, types, strict=True):
        if issubclass(expected, enum.Enum):
            assert isinstance(value, expected), (value, expected)
            continue
        assert_decodable_value(value)
        if expected is float:
            assert type(value) in (int, float), (value, expected)  # an int column value too
        else:
            assert type(value) is expected, (value, expected)


def decode_or_refuse(cursor: str, sort: str, **options: Any) -> Any:
    """`decode_cursor`'s result, or None when it refused with `InvalidCursor` (400).

    Any other exception propagates: that would be a 500.
    """
    try:
        return decode_cursor(cursor, sort, **options)
    except InvalidCursor as error:
        refused = error
    assert refused.status_code == 400
    assert str(refused.message).startswith("Invalid cursor"), refused.message
    return None


# --- round trips -------------------------------------------------------------------------


@settings(max_examples=examples(300))
@given(
    values=st.lists(CURSOR_VALUES, max_size=4),
    sort=SORTS,
    backward=st.booleans(),
    secret=SECRETS,
)
def test_round_trip_without_types(
    values: list[Any], sort: str, backward: bool, secret: bytes | None
) -> None:
    cursor = encode_cursor(values, sort, backward=backward, secret=secret)
    assert isinstance(cursor, str)
    assert set(cursor) <= set(BASE64URL + "."), cursor  # safe in a URL as is
    decoded, decoded_backward = decode_cursor(cursor, sort, secret=secret)
    assert decoded_backward is backward
    assert_same_values(decoded, [plain(v) for v in values])


@settings(max_examples=examples(300))
@given(
    values=st.lists(SORT_KEY_VALUES, min_size=1, max_size=4),
    sort=SORTS,
    backward=st.booleans(),
    secret=SECRETS,
)
def test_round_trip_with_types(
    values: list[Any], sort: str, backward: bool, secret: bytes | None
) -> None:
    # What fastkit.db does: the columns' Python types restore enums and check each value.
    cursor = encode_cursor(values, sort, backward=backward, secret=secret)
    types = [type_of(v) for v in values]
    decoded, decoded_backward = decode_cursor(cursor, sort, secret=secret, types=types)
    assert decoded_backward is backward
    assert_same_values(decoded, values)
    for got, want in zip(decoded, values, strict=True):
        if isinstance(want, enum.Enum):
            assert got is want


@settings(max_examples=examples(100))
@given(
    values=st.lists(SORT_KEY_VALUES, min_size=1, max_size=3),
    sort=SORTS,
    other=SORTS,
    secret=SECRETS,
)
def test_cursor_for_another_sort_is_refused(
    values: list[Any], sort: str, other: str, secret: bytes | None
) -> None:
    cursor = encode_cursor(values, sort, secret=secret)
    if other != sort:
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, other, secret=secret)


@settings(max_examples=examples(100))
@given(
    values=st.lists(SORT_KEY_VALUES, min_size=1, max_size=3),
    sort=SORTS,
    secret=st.binary(min_size=32, max_size=64),
    other=SECRETS,
)
def test_signed_cursor_needs_the_same_secret(
    values: list[Any], sort: str, secret: bytes, other: bytes | None
) -> None:
    signed = encode_cursor(values, sort, secret=secret)
    unsigned = encode_cursor(values, sort)
    if other != secret:
        with pytest.raises(InvalidCursor):
            decode_cursor(signed, sort, secret=other)
    # An unsigned cursor is refused where cursors are signed, whatever it says.
    with pytest.raises(InvalidCursor):
        decode_cursor(unsigned, sort, secret=secret)


@settings(max_examples=examples(50))
@given(
    value=st.one_of(st.integers(max_value=INT64_MIN - 1), st.integers(min_value=INT64_MAX + 1)).map(
        lambda v: [v]
    ),
    sort=SORTS,
)
def test_ints_beyond_int64_are_refused_not_500(value: list[int], sort: str) -> None:
    # No database integer column holds them; decoding refuses them rather than fail later.
    cursor = encode_cursor(value, sort)
    for types in (None, [int]):
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, sort, types=types)


@settings(max_examples=examples(50))
@given(text=st.text().map(lambda t: t + "\x00"), sort=SORTS)
def test_nul_text_is_refused_not_500(text: str, sort: str) -> None:
    cursor = encode_cursor([text], sort)
    for types in (None, [str]):
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, sort, types=types)


# --- whatever the client sends back --------------------------------------------------------

SMALL_VALUES = st.lists(SORT_KEY_VALUES, min_size=1, max_size=3)


@st.composite
def cursors(draw: st.DrawFn, *, signed: bool) -> tuple[str, str, bytes | None, list[type]]:
    """A valid cursor: ``(cursor, sort, secret, types)``."""
    values = draw(SMALL_VALUES)
    sort = draw(st.text(max_size=20))
    secret = draw(st.binary(min_size=32, max_size=40)) if signed else None
    cursor = encode_cursor(values, sort, backward=draw(st.booleans()), secret=secret)
    return cursor, sort, secret, [type_of(v) for v in values]


@settings(max_examples=examples(400))
@given(data=st.data(), signed=st.booleans())
def test_mutated_cursor_is_refused_or_well_formed(data: st.DataObject, signed: bool) -> None:
    cursor, sort, secret, types = data.draw(cursors(signed=signed))
    mutated = data.draw(mutations(cursor))
    assert mutated != cursor
    for options in ({}, {"types": types}):
        result = decode_or_refuse(mutated, sort, secret=secret, **options)
        if signed:
            assert result is None, f"a changed signed cursor was accepted: {mutated!r}"
        elif result is not None:
            assert_well_formed(result, options.get("types"))


@settings(max_examples=examples(6))
@given(cursor=cursors(signed=True))
def test_every_single_edit_of_a_signed_cursor_is_refused(
    cursor: tuple[str, str, bytes | None, list[type]],
) -> None:
    # Exhaustive around one cursor: each character replaced by each letter (a base64url
    # letter changes the payload or the signature), deleted, or a letter inserted.
    text, sort, secret, _ = cursor
    for mutated in single_edits(text):
        assert decode_or_refuse(mutated, sort, secret=secret) is None, (
            f"a changed signed cursor was accepted: {text!r} -> {mutated!r}"
        )


@settings(max_examples=examples(6))
@given(cursor=cursors(signed=False))
def test_every_single_edit_of_an_unsigned_cursor_is_refused_or_well_formed(
    cursor: tuple[str, str, bytes | None, list[type]],
) -> None:
    text, sort, _, types = cursor
    for mutated in single_edits(text):
        for options in ({}, {"types": types}):
            result = decode_or_refuse(mutated, sort, **options)
            if result is not None:
                assert_well_formed(result, options.get("types"))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# A cursor's JSON, made up: the documented tags with values of any JSON type, strings
# that look like what the tags parse (ISO dates, decimals, uuids), enums nested deep.
TAGS = st.sampled_from(["n", "b", "i", "f", "s", "dt", "d", "u", "dec", "e", "", "x", "I", "ee"])
LOOKALIKE_TEXT = st.one_of(
    st.text(max_size=12),
    DATETIMES.map(dt.datetime.isoformat),
    st.dates().map(dt.date.isoformat),
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.decimals().map(str),
    st.sampled_from(
        ["NaN", "sNaN", "-sNaN", "Infinity", "-inf", "1e999999999", "1e-999999999", "9" * 100]
    ),
    st.sampled_from(["2026-13-01", "2026-02-30T25:61", "2026-01-01T00:00+24:00", "0000-01-01"]),
)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.integers(max_value=-(10**300), min_value=-(10**400)),
    st.floats(),
    LOOKALIKE_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
TAGGED_ITEMS = st.tuples(TAGS, JSON_LEAVES | JSON_VALUES).map(list)
TAGGED = st.one_of(
    TAGGED_ITEMS,
    TAGGED_ITEMS.map(lambda item: ["e", item]),
    st.tuples(TAGS).map(list),
    st.tuples(TAGS, JSON_VALUES, JSON_VALUES).map(list),
    JSON_VALUES,
)


def deep_enum(depth: int) -> Any:
    value: Any = ["i", 1]
    for _ in range(depth):
        value = ["e", value]
    return value


@st.composite
def forged_payloads(draw: st.DrawFn, sort: str) -> str:
    """A cursor's base64url JSON, written by a client instead of `encode_cursor`."""
    keys = draw(
        st.one_of(
            st.lists(TAGGED, max_size=4),
            st.lists(st.integers(0, 400).map(deep_enum), min_size=1, max_size=2),
        )
    )
    document: dict[str, Any] = {"k": keys, "o": sort, "d": draw(st.sampled_from(["n", "p"]))}
    if draw(st.integers(0, 3)) == 0:  # mostly a well-formed document, so the values get read
        document = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "k": st.just(keys) | JSON_VALUES,
                    "o": st.just(sort) | JSON_VALUES,
                    "d": JSON_VALUES,
                    draw(st.text(max_size=2)): JSON_VALUES,
                },
            )
        )
    # allow_nan: Python's json reads NaN and Infinity back, so a client can send them.
    return b64(json.dumps(document, allow_nan=True).encode())


ARBITRARY_CURSORS = st.one_of(
    st.text(),
    st.text(st.characters(exclude_categories=())),  # lone surrogates too
    st.text(BASE64URL + ".=", max_size=200),
    st.binary().map(b64),
    st.builds(lambda a, b: f"{a}.{b}", st.binary().map(b64), st.binary(max_size=40).map(b64)),
)


@settings(max_examples=examples(400))
@given(
    cursor=ARBITRARY_CURSORS,
    sort=st.text(max_size=5),
    secret=SECRETS,
    types=st.none() | st.lists(st.sampled_from([int, float, str, bool, dt.datetime, Color])),
)
def test_arbitrary_text_is_refused_or_well_formed(
    cursor: str, sort: str, secret: bytes | None, types: list[type] | None
) -> None:
    result = decode_or_refuse(cursor, sort, secret=secret, types=types)
    if result is not None:
        assert secret is None, f"an unsigned made-up cursor passed as signed: {cursor!r}"
        assert_well_formed(result, types)


TYPE_LISTS = st.lists(
    st.sampled_from(
        [int, float, str, bool, dt.datetime, dt.date, uuid.UUID, decimal.Decimal, Color, Level]
    ),
    max_size=3,
)


@settings(max_examples=examples(600))
@given(data=st.data(), sort=st.text(max_size=5), types=st.none() | TYPE_LISTS)
def test_forged_payload_is_refused_or_well_formed(
    data: st.DataObject, sort: str, types: list[type] | None
) -> None:
    cursor = data.draw(forged_payloads(sort))
    result = decode_or_refuse(cursor, sort, types=types)
    if result is not None:
        assert_well_formed(result, types)
    # Signed with the right key (as if the key leaked, or a server bug signed it), the
    # same payload is read the same way: the signature guards, the reading stays strict.
    secret = b"k" * 32
    signature = b64(hmac.new(secret, cursor.encode("ascii"), hashlib.sha256).digest())
    result = decode_or_refuse(f"{cursor}.{signature}", sort, secret=secret, types=types)
    if result is not None:
        assert_well_formed(result, types)


# --- through an app: a real table, `apaginate` and `paginate` --------------------------------


class Base(DeclarativeBase):
    pass


class Reading(Base):
    """A column of each type a cursor carries; all NOT NULL, as cursor pages need."""

    __tablename__ = "reading"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    score: Mapped[float]
    price: Mapped[decimal.Decimal] = mapped_column(Numeric(12, 2))
    born: Mapped[dt.date]
    seen: Mapped[dt.datetime]
    token: Mapped[uuid.UUID]
    active: Mapped[bool]
    color: Mapped[Color] = mapped_column(Enum(Color))


COLUMN_TYPES: dict[str, type] = {
    "id": int,
    "name": str,
    "score": float,
    "price": decimal.Decimal,
    "born": dt.date,
    "seen": dt.datetime,
    "token": uuid.UUID,
    "active": bool,
    "color": Color,
}
ORDERS = ["id", "-id", "name", "-score", "price", "born", "-seen", "token", "active", "color"]
ORDERS += ["name,-score", "-born,price", "active,-color,seen"]


def order_by(order: str) -> list[Any]:
    return [
        getattr(Reading, part.lstrip("-")).desc()
        if part.startswith("-")
        else getattr(Reading, part)
        for part in order.split(",")
    ]


def signature(order: str) -> str:
    """The sort a cursor names: the ORDER BY, then the primary key unless already there."""
    names = [part.lstrip("-") for part in order.split(",")]
    return order if "id" in names else f"{order},id"


def key_types(order: str) -> list[type]:
    return [COLUMN_TYPES[part.lstrip("-")] for part in signature(order).split(",")]


SIGNED_SECRET = "p" * 32
Signed = CursorParams.configure(secret=SIGNED_SECRET)


def cursor_app(adb: Database, sdb: SyncDatabase) -> FastAPI:
    app = FastAPI(lifespan=adb.lifespan)
    install_exception_handlers(app)

    def ids(rows: Any) -> list[int]:
        return [row.id for row in rows]

    @app.get("/async/plain/{order}")
    async def a_plain(
        order: str, params: Annotated[CursorParams, Depends()], session: adb.Session
    ) -> CursorPage[int]:
        stmt = select(Reading).order_by(*order_by(order))
        return await apaginate(session, stmt, params, transformer=ids)

    @app.get("/async/signed/{order}")
    async def a_signed(
        order: str, params: Annotated[Signed, Depends()], session: adb.Session
    ) -> CursorPage[int]:
        stmt = select(Reading).order_by(*order_by(order))
        return await apaginate(session, stmt, params, transformer=ids)

    @app.get("/sync/plain/{order}")
    def s_plain(
        order: str, params: Annotated[CursorParams, Depends()], session: sdb.Session
    ) -> CursorPage[int]:
        return paginate(
            session, select(Reading).order_by(*order_by(order)), params, transformer=ids
        )

    @app.get("/sync/signed/{order}")
    def s_signed(
        order: str, params: Annotated[Signed, Depends()], session: sdb.Session
    ) -> CursorPage[int]:
        return paginate(
            session, select(Reading).order_by(*order_by(order)), params, transformer=ids
        )

    return app


def seed_rows() -> list[Reading]:
    """A few rows sharing sort values (the tie-breaker matters), with infinite scores."""
    rows = []
    for i in range(1, 17):
        rows.append(
            Reading(
                id=i,
                name=["ann", "bob", "cat"][i % 3],
                score=[1.5, -2.0, math.inf, -math.inf, 0.0][i % 5],
                price=decimal.Decimal(["9.99", "0.00", "-3.50", "1000000.01"][i % 4]),
                born=dt.date(1990 + i % 4, 1 + i % 12, 1),
                seen=dt.datetime(2026, 1, 1, i % 3, 30),
                token=uuid.UUID(int=(i * 7919) % 13),
                active=i % 2 == 0,
                color=list(Color)[i % 3],
            )
        )
    return rows


@dataclass
class CursorApp:
    client: TestClient
    sdb: SyncDatabase

    def get(self, url: str, **params: Any) -> Any:
        return self.client.get(url, params={k: v for k, v in params.items() if v is not None})

    def reference(self, order: str) -> list[int]:
        """The ids in the order the database gives for the same ORDER BY and tie-breaker."""
        with self.sdb.session_scope() as session:
            stmt = select(Reading.id).order_by(*order_by(order), Reading.id)
            return list(session.scalars(stmt))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def cursor_app_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CursorApp]:
    """The app over SQLite, and over PostgreSQL when FASTKIT_TEST_POSTGRES_URL is set.

    Module-scoped: the examples only read the table.
    """
    with database_target(request.param, tmp_path_factory.mktemp("cursors")) as database:
        sdb = SyncDatabase(database.sync_url, **database.sync_kwargs)
        sdb.create_all(Base.metadata)
        with sdb.session_scope() as session:
            session.add_all(seed_rows())
        adb = Database(database.async_url, **database.async_kwargs)
        try:
            # One portal (one event loop) for the module: asyncpg connections belong to it.
            with TestClient(cursor_app(adb, sdb)) as client:
                yield CursorApp(client, sdb)
        finally:
            sdb.dispose()


ENGINES = st.sampled_from(["async", "sync"])


def check_cursor_answer(response: Any, cursor: str, *, signed: bool) -> None:
    """200 with a page (a plain endpoint only), 400 ``Invalid cursor``, 422 if too long."""
    body = response.json()
    if len(cursor) > 4096:
        assert response.status_code == 422, response.text
        assert_error_envelope(422, body)
        assert [error["loc"] for error in body["data"]] == [["query", "cursor"]]
        return
    if response.status_code == 200 and not signed:
        assert set(body) == {"items", "next_cursor", "previous_cursor", "page_size", "size"}, body
        assert all(type(i) is int for i in body["items"]), body
        return
    assert response.status_code == 400, (cursor, response.text)
    assert_error_envelope(400, body)
    assert body["message"].startswith("Invalid cursor: "), body
    assert body["data"] is None


@settings(max_examples=examples(150))
@given(
    data=st.data(),
    engine=ENGINES,
    order=st.sampled_from(ORDERS),
    signed=st.booleans(),
)
def test_app_answers_any_cursor_text_with_a_page_or_a_400(
    cursor_app_client: CursorApp, data: st.DataObject, engine: str, order: str, signed: bool
) -> None:
    cursor = data.draw(
        st.one_of(
            st.text(),
            st.text(BASE64URL + ".", max_size=300),
            st.binary().map(b64),
            forged_payloads(signature(order)),
            st.text(BASE64URL, min_size=4090, max_size=4100),
        )
    )
    url = f"/{engine}/{'signed' if signed else 'plain'}/{order}"
    check_cursor_answer(cursor_app_client.get(url, cursor=cursor), cursor, signed=signed)


@settings(max_examples=examples(150))
@given(
    data=st.data(),
    engine=ENGINES,
    order=st.sampled_from(ORDERS),
    signed=st.booleans(),
    size=st.integers(1, 5),
)
def test_app_answers_a_changed_cursor_with_a_page_or_a_400(
    cursor_app_client: CursorApp,
    data: st.DataObject,
    engine: str,
    order: str,
    signed: bool,
    size: int,
) -> None:
    url = f"/{engine}/{'signed' if signed else 'plain'}/{order}"
    first = cursor_app_client.get(url, page_size=size)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor is not None  # 16 rows: there is a second page
    mutated = data.draw(mutations(cursor))
    check_cursor_answer(cursor_app_client.get(url, cursor=mutated), mutated, signed=signed)


@st.composite
def typed_cursors(draw: st.DrawFn, order: str) -> str:
    """A cursor `encode_cursor` could make for ``order``, with values no row has: each of
    the column's type, from the edges of its domain (huge, tiny, infinite, far dates...)."""
    by_type: dict[type, st.SearchStrategy[Any]] = {
        int: st.integers(INT64_MIN, INT64_MAX) | st.sampled_from([INT64_MIN, INT64_MAX, 2**31]),
        str: TEXT,
        float: st.floats(),
        decimal.Decimal: st.decimals(),
        dt.date: st.dates(),
        dt.datetime: DATETIMES,
        uuid.UUID: st.uuids(),
        bool: st.booleans(),
        Color: st.sampled_from(Color),
    }
    values = [draw(by_type[t]) for t in key_types(order)]
    return encode_cursor(values, signature(order), backward=draw(st.booleans()))


@settings(max_examples=examples(150))
@given(data=st.data(), engine=ENGINES, order=st.sampled_from(ORDERS), signed=st.booleans())
def test_app_answers_a_made_up_cursor_with_a_page_or_a_400(
    cursor_app_client: CursorApp, data: st.DataObject, engine: str, order: str, signed: bool
) -> None:
    # Unsigned: a client may write any cursor; a well-typed one out of the column's range
    # gives a page (maybe empty) or a 400, never a 500. Signed: always a 400.
    cursor = data.draw(typed_cursors(order))
    url = f"/{engine}/{'signed' if signed else 'plain'}/{order}"
    check_cursor_answer(cursor_app_client.get(url, cursor=cursor), cursor, signed=signed)


@settings(max_examples=examples(40))
@given(engine=ENGINES, order=st.sampled_from(ORDERS), signed=st.booleans(), size=st.integers(1, 6))
def test_walking_the_pages_visits_every_row_once_in_order(
    cursor_app_client: CursorApp, engine: str, order: str, signed: bool, size: int
) -> None:
    # Every cursor the app makes works, whatever values the boundary rows hold (infinite
    # scores included); forward then back again, page by page.
    url = f"/{engine}/{'signed' if signed else 'plain'}/{order}"
    pages, cursor = [], None
    for _ in range(20):
        response = cursor_app_client.get(url, page_size=size, cursor=cursor)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            break
    assert [i for page in pages for i in page["items"]] == cursor_app_client.reference(order)
    for before, page in itertools.pairwise(pages):
        response = cursor_app_client.get(url, page_size=size, cursor=page["previous_cursor"])
        assert response.status_code == 200, response.text
        assert response.json()["items"] == before["items"]


# --- regressions: the failing examples the properties above found --------------------------


def test_regression_infinite_and_nan_floats_round_trip() -> None:
    # Found by test_round_trip_with_types: encode_cursor([inf], "") raised ValueError
    # (json.dumps(allow_nan=False)), a 500 for a page ending on a row whose float is
    # infinite, which SQLite and PostgreSQL columns hold.
    cursor = encode_cursor([math.inf, -math.inf, math.nan, 1.5], "")
    values, backward = decode_cursor(cursor, "", types=[float, float, float, float])
    assert values[:2] == [math.inf, -math.inf]
    assert math.isnan(values[2])
    assert values[3] == 1.5
    assert backward is False


def test_regression_a_walk_over_infinite_scores(cursor_app_client: CursorApp) -> None:
    # The same bug through the app: every page of -score, one row a page, boundary rows
    # with scores of inf and -inf included.
    for engine in ("async", "sync"):
        response = cursor_app_client.get(f"/{engine}/plain/-score", page_size=1)
        seen = []
        while True:
            assert response.status_code == 200, response.text
            seen += response.json()["items"]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
            response = cursor_app_client.get(f"/{engine}/plain/-score", size=1, cursor=cursor)
        assert seen == cursor_app_client.reference("-score")


def test_regression_a_changed_signature_with_the_same_bytes_is_refused() -> None:
    # Found by test_every_single_edit_of_a_signed_cursor_is_refused: the last character of
    # the signature carries 2 unused bits, so "...4lQ" -> "...4lR" decoded to the same
    # digest and the changed signed cursor was accepted.
    secret = b"\x00" * 32
    cursor = encode_cursor([False], "", secret=secret)
    assert cursor == (
        "eyJrIjpbWyJiIixmYWxzZV1dLCJvIjoiIiwiZCI6Im4ifQ.X3vp9jJbedk0rkxMBjIaJYwbpiCx3TL3unYolzt_4lQ"
    )
    assert decode_cursor(cursor, "", secret=secret) == ([False], False)
    for last in "RST":
        with pytest.raises(InvalidCursor, match="not base64url"):
            decode_cursor(cursor[:-1] + last, "", secret=secret)
    # The payload has one spelling too ("...ifQ" ends in 4 unused bits).
    with pytest.raises(InvalidCursor, match="not base64url"):
        decode_cursor(encode_cursor([False], "")[:-1] + "R", "")


def test_regression_a_nested_enum_value_is_refused() -> None:
    # Found by test_forged_payload_is_refused_or_well_formed: {"k": [["e", ["e", ["i", 1]]]]}
    # decoded (without types) to fastkit's internal _EnumValue object instead of a value.
    cursor = "eyJrIjogW1siZSIsIFsiZSIsIFsiaSIsIDFdXV1dLCAibyI6ICIiLCAiZCI6ICJuIn0"
    with pytest.raises(InvalidCursor, match="a value cannot be read"):
        decode_cursor(cursor, "")
    assert decode_cursor(encode_cursor([Color.RED], ""), "") == (["red"], False)


def test_regression_a_float_too_large_is_refused() -> None:
    # Found by test_forged_payload_is_refused_or_well_formed: {"k": [["f", 1846...673]]}, a
    # 309-digit integer under the float tag, raised OverflowError from float() (a 500).
    cursor = (
        "eyJrIjogW1siZiIsIDE4NDYyMDE3MjA2NTAwNTE5OTA1MDQzOTU4OTY1NTg2OTc4NzgxNTg1OTYyNzQxMzE1"
        "OTIzMzk3NjUzNjAzNDU1MDk2NTEyNjc4NTM0ODA1MzI1MjM4NDg5MDY3MTQwOTYxNDczMzk4MzcyMTQ3NTg2"
        "MjgxMzc4ODc4NjExMjc2NzIzNzM1MjgwMjQ1OTk2NjY2NjYyNTE0MzkwNTk4MjI4MDg4MDI3NjM4OTUxMjIy"
        "MDExMTY4MzAyNjczOTI4MzU3ODQ5ODM3NjM2NzcxNjU2NTY4MjAyODIwMjQ4NjEyNjQxNTMwODQzODUxOTc3"
        "NzMwMzM2NzY1MTMxMjMwMTU4MDU1Mzg5NjAzMTAwOTk4MDgzMjk2NTkxODk4MzUwNDc2Njg3NDc4MjYzMTU3"
        "OTI0NTY3M11dLCAibyI6ICIiLCAiZCI6ICJuIn0"
    )
    for types in (None, [float]):
        with pytest.raises(InvalidCursor, match="a value cannot be read"):
            decode_cursor(cursor, "", types=types)


def test_regression_mixed_directions_over_a_boolean_column(cursor_app_client: CursorApp) -> None:
    # Found by test_app_answers_a_made_up_cursor_with_a_page_or_a_400 and
    # test_walking_the_pages_visits_every_row_once_in_order: ORDER BY active, color DESC,
    # seen needs the OR form of the keyset condition, where `active > False` raised
    # SQLAlchemy's ArgumentError (a 500 from the second page on).
    made_up = (  # {"k":[["b",false],["e",["s","red"]],["dt","2000-01-01T00:00:00"],["i",0]],...}
        "eyJrIjpbWyJiIixmYWxzZV0sWyJlIixbInMiLCJyZWQiXV0sWyJkdCIsIjIwMDAtMDEtMDFUMDA6MDA6MDAi"
        "XSxbImkiLDBdXSwibyI6ImFjdGl2ZSwtY29sb3Isc2VlbixpZCIsImQiOiJuIn0"
    )
    url = "/{}/plain/active,-color,seen"
    for engine in ("async", "sync"):
        response = cursor_app_client.get(url.format(engine), cursor=made_up)
        assert response.status_code == 200, response.text
        first = cursor_app_client.get(url.format(engine), size=3).json()
        second = cursor_app_client.get(url.format(engine), size=3, cursor=first["next_cursor"])
        assert second.status_code == 200, second.text
        expected = cursor_app_client.reference("active,-color,seen")[3:6]
        assert second.json()["items"] == expected
