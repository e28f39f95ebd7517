"""Opaque cursors: the boundary row's sort keys, typed, optionally HMAC-signed.

`encode_cursor` and `decode_cursor` know nothing of SQL: a cursor is a base64url JSON
payload (tagged values, the sort it belongs to, the direction), with ``.signature`` when
signed. Any cursor that cannot be used is `InvalidCursor` (400), whatever is wrong with it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastkit._b64 import b64url_decode, b64url_encode
from fastkit.errors import BadRequest

__all__ = ["InvalidCursor", "decode_cursor", "encode_cursor"]


class InvalidCursor(BadRequest):
    """400: the cursor cannot be used (garbled, tampered, or made for another sort)."""

    message = "Invalid cursor"


_b64encode = b64url_encode


def _b64decode(text: str) -> bytes:
    try:
        return b64url_decode(text)
    except ValueError:  # binascii.Error and non-ASCII text included
        raise InvalidCursor("Invalid cursor: not base64url.") from None


def _encode_value(value: Any) -> list[Any]:
    # Tagged so that decoding restores the exact type; bool before int (bool is an int).
    if value is None:
        return ["n"]
    if isinstance(value, enum.Enum):
        return ["e", _encode_value(value.value)]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", value]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, dt.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, dt.date):
        return ["d", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    if isinstance(value, decimal.Decimal):
        return ["dec", str(value)]
    raise TypeError(f"Cannot put {type(value).__name__} in a cursor; sort by a simpler column.")


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "b": lambda v: v if isinstance(v, bool) else _bad(),
    "i": lambda v: v if type(v) is int and -(2**63) <= v < 2**63 else _bad(),
    "f": lambda v: float(v) if type(v) in (int, float) else _bad(),
    "s": lambda v: _text(v),
    "dt": lambda v: dt.datetime.fromisoformat(v) if isinstance(v, str) else _bad(),
    "d": lambda v: dt.date.fromisoformat(v) if isinstance(v, str) else _bad(),
    "u": lambda v: uuid.UUID(hex=v) if isinstance(v, str) else _bad(),
    "dec": lambda v: decimal.Decimal(v) if isinstance(v, str) else _bad(),
}


def _bad() -> Any:
    raise ValueError("bad value")


def _text(value: Any) -> str:
    # Text a database driver can bind: no NUL (PostgreSQL refuses it), no lone surrogates.
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("bad value")
    value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for lone surrogates
    return value


class _EnumValue:
    """An enum member's value from a cursor, turned back into the member by `_typed`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _decode_value(item: Any, *, enum_ok: bool = True) -> Any:
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise ValueError("bad value")
    tag = item[0]
    if tag == "n" and len(item) == 1:
        return None
    if tag == "e" and len(item) == 2 and enum_ok:
        # One level: an enum's value is a plain value, never another enum.
        return _EnumValue(_decode_value(item[1], enum_ok=False))
    decoder = _DECODERS.get(tag)
    if decoder is None or len(item) != 2:
        raise ValueError("bad value")
    return decoder(item[1])


# Made once: json.dumps() with non-default separators builds a new encoder on every call.
# allow_nan: NaN and +-Infinity too, float columns hold them.
_JSON_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


def encode_cursor(
    values: Sequence[Any], sort: str, *, backward: bool = False, secret: bytes | None = None
) -> str:
    """Make an opaque cursor for the row whose sort keys are ``values``.

    Args:
        values: The boundary row's sort key values, in sort order.
        sort: A signature of the sort the cursor belongs to (e.g. ``"-created_at,id"``).
        backward: The cursor asks for the rows *before* the boundary.
        secret: Sign the cursor (HMAC-SHA256) with this key.
    """
    payload = _JSON_ENCODE(
        {"k": [_encode_value(v) for v in values], "o": sort, "d": "p" if backward else "n"}
    ).encode()
    token = _b64encode(payload)
    if secret is None:
        return token
    signature = hmac.new(secret, token.encode("ascii"), hashlib.sha256).digest()
    return f"{token}.{_b64encode(signature)}"


def decode_cursor(
    cursor: str,
    sort: str,
    *,
    secret: bytes | None = None,
    types: Sequence[type | None] | None = None,
) -> tuple[list[Any], bool]:
    """Read a cursor made by `encode_cursor`: ``(values, backward)``.

    Args:
        cursor: The cursor from the query string.
        sort: The signature of the current sort; a cursor for another sort is refused.
        secret: The signing key; with it, unsigned or tampered cursors are refused.
        types: The expected Python type of each value (None: any).

    Raises:
        InvalidCursor: (400) for any cursor that cannot be used, whatever is wrong with it.
    """
    token, _, signature = cursor.partition(".")
    if secret is not None:
        expected = hmac.new(secret, token.encode("ascii", "replace"), hashlib.sha256).digest()
        if not signature or not hmac.compare_digest(_b64decode(signature), expected):
            raise InvalidCursor("Invalid cursor: the signature does not match.")
    elif signature:
        raise InvalidCursor("Invalid cursor: it is signed, but this endpoint does not sign them.")
    try:
        data = json.loads(_b64decode(token))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidCursor("Invalid cursor: cannot be read.") from None
    if not isinstance(data, dict) or set(data) != {"k", "o", "d"}:
        raise InvalidCursor("Invalid cursor: cannot be read.")
    if data["o"] != sort:
        raise InvalidCursor("Invalid cursor: it was made for another sort order; start over.")
    if data["d"] not in ("n", "p") or not isinstance(data["k"], list):
        raise InvalidCursor("Invalid cursor: cannot be read.")
    try:
        values = [_decode_value(item) for item in data["k"]]
    except (ValueError, TypeError, OverflowError, decimal.InvalidOperation):
        raise InvalidCursor("Invalid cursor: a value cannot be read.") from None
    if types is not None:
        if len(values) != len(types):
            raise InvalidCursor("Invalid cursor: it was made for another sort order; start over.")
        values = [_typed(v, t) for v, t in zip(values, types, strict=True)]
    elif any(isinstance(v, _EnumValue) for v in values):
        values = [v.value if isinstance(v, _EnumValue) else v for v in values]
    return values, data["d"] == "p"


def _typed(value: Any, expected: type | None) -> Any:
    if isinstance(value, _EnumValue):
        if expected is None or not issubclass(expected, enum.Enum):
            raise InvalidCursor("Invalid cursor: a value has the wrong type.")
        try:
            return expected(value.value)
        except ValueError:
            raise InvalidCursor("Invalid cursor: a value has the wrong type.") from None
    if not _type_ok(value, expected):
        raise InvalidCursor("Invalid cursor: a value has the wrong type.")
    return value


def _type_ok(value: Any, expected: type | None) -> bool:
    if value is None:
        return False  # sort keys are NOT NULL (keyset conditions cannot compare NULLs)
    if expected is None:
        return True
    if expected is float:
        return type(value) in (int, float)
    if expected in (bool, int, dt.datetime, dt.date):
        return type(value) is expected  # bool is an int, a datetime is a date: be exact
    return isinstance(value, expected)
