"""fastkit.pagination.cursor: encode_cursor / decode_cursor round trips, types, signatures."""

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from fastkit.pagination import (
    InvalidCursor,
    decode_cursor,
    encode_cursor,
)


class Item(BaseModel):
    id: int
    name: str


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
