"""Page, limit-offset and cursor pagination: query models, page models, cursors.

Plain Pydantic models and functions, no app patching. Use a params model as a dependency
(``Annotated[PageParams, Depends()]`` or ``Annotated[PageParams, Query()]``), return a
page model. `paginate` slices in-memory sequences; SQLAlchemy queries go through
``fastkit.db.apaginate`` / ``fastkit.db.paginate`` (this module imports no SQLAlchemy).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import hmac
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar, overload

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator

from fastkit._b64 import b64url_decode, b64url_encode
from fastkit.errors import BadRequest

__all__ = [
    "CursorPage",
    "CursorParams",
    "InvalidCursor",
    "LimitOffsetPage",
    "LimitOffsetParams",
    "Page",
    "PageParams",
    "SortParams",
    "decode_cursor",
    "encode_cursor",
    "paginate",
]

T = TypeVar("T")

DEFAULT_SIZE = 20
MAX_SIZE = 100
# Upper bounds for page and offset: deeper offset pages cost time in proportion to their
# depth (use cursors there), and larger numbers would overflow database integers.
MAX_PAGE = 1_000_000
MAX_OFFSET = 100_000_000


class _QueryModel(BaseModel):
    """Query parameters that answer 422, never 500, however they are declared.

    Under ``Annotated[Model, Query()]`` FastAPI validates the model itself; under
    ``Depends()`` it calls the class, and a validator error would escape as a 500: turn it
    into the same ``RequestValidationError`` (located in the query string) instead.
    """

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise RequestValidationError(
                [
                    {**err, "loc": ("query", *err["loc"])}
                    for err in error.errors(include_url=False, include_context=False)
                ]
            ) from None


def _check_sizes(default_size: int, max_size: int) -> None:
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}.")
    if not 1 <= default_size <= max_size:
        raise ValueError(
            f"default_size must be between 1 and max_size ({max_size}), got {default_size}."
        )


# --- page / page_size ---------------------------------------------------------------------


class PageParams(_QueryModel):
    """``?page=2&page_size=20``: pages numbered from 1, 1-100 items a page (default 20).

    Out-of-range values are answered 422, never clamped. Use `configure` for other sizes.

    Example:
        ```python
        @app.get("/items")
        async def list_items(params: Annotated[PageParams, Depends()]) -> Page[Item]:
            return paginate(ITEMS, params)
        ```
    """

    page: int = Field(1, ge=1, le=MAX_PAGE, description="Page number, from 1.")
    page_size: int = Field(DEFAULT_SIZE, ge=1, le=MAX_SIZE, description="Items per page.")

    @property
    def offset(self) -> int:
        """How many items come before this page."""
        return (self.page - 1) * self.page_size

    @property
    def limit(self) -> int:
        """How many items this page holds at most."""
        return self.page_size

    @classmethod
    def configure(
        cls, *, default_size: int = DEFAULT_SIZE, max_size: int = MAX_SIZE
    ) -> type[PageParams]:
        """A params class with other page size default and maximum.

        Example:
            ```python
            BigPages = PageParams.configure(default_size=50, max_size=500)

            @app.get("/logs")
            async def logs(params: Annotated[BigPages, Depends()]) -> Page[Log]: ...
            ```

        Raises:
            ValueError: If the sizes are not ``1 <= default_size <= max_size``.
        """
        _check_sizes(default_size, max_size)
        return create_model(
            f"PageParams_{default_size}_{max_size}",
            __base__=cls,
            page_size=(
                int,
                Field(default_size, ge=1, le=max_size, description="Items per page."),
            ),
        )


class Page(BaseModel, Generic[T]):
    """One page: ``{items, total, page, page_size, pages}``.

    ``total`` and ``pages`` are None when the count was skipped (``include_total=False``).
    """

    items: list[T]
    total: int | None
    page: int
    page_size: int
    pages: int | None

    @classmethod
    def create(cls, items: Sequence[T], total: int | None, params: PageParams) -> Page[T]:
        """Build a page from its items, the total count and the params that asked for it."""
        pages = None if total is None else math.ceil(total / params.page_size)
        return cls(
            items=list(items),
            total=total,
            page=params.page,
            page_size=params.page_size,
            pages=pages,
        )


# --- limit / offset -------------------------------------------------------------------------


class LimitOffsetParams(_QueryModel):
    """``?limit=20&offset=40``: 1-100 items (default 20), skipping ``offset`` (>= 0)."""

    limit: int = Field(DEFAULT_SIZE, ge=1, le=MAX_SIZE, description="Items to return.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Items to skip.")

    @classmethod
    def configure(
        cls, *, default_size: int = DEFAULT_SIZE, max_size: int = MAX_SIZE
    ) -> type[LimitOffsetParams]:
        """A params class with another default and maximum ``limit``."""
        _check_sizes(default_size, max_size)
        return create_model(
            f"LimitOffsetParams_{default_size}_{max_size}",
            __base__=cls,
            limit=(int, Field(default_size, ge=1, le=max_size, description="Items to return.")),
        )


class LimitOffsetPage(BaseModel, Generic[T]):
    """``{items, total, limit, offset}``; ``total`` is None when the count was skipped."""

    items: list[T]
    total: int | None
    limit: int
    offset: int

    @classmethod
    def create(
        cls, items: Sequence[T], total: int | None, params: LimitOffsetParams
    ) -> LimitOffsetPage[T]:
        return cls(items=list(items), total=total, limit=params.limit, offset=params.offset)


# --- cursors -----------------------------------------------------------------------------


class CursorParams(_QueryModel):
    """``?cursor=...&size=20``: keyset pagination; no cursor means the first page.

    Cursors are opaque; a garbled, mistyped, tampered one or one made for another sort is
    answered 400. Sign them with `configure` (``secret=``) so clients cannot forge them.
    """

    cursor: str | None = Field(None, max_length=4096, description="Opaque cursor from a page.")
    size: int = Field(DEFAULT_SIZE, ge=1, le=MAX_SIZE, description="Items per page.")

    cursor_secret: ClassVar[bytes | None] = None

    @classmethod
    def configure(
        cls,
        *,
        default_size: int = DEFAULT_SIZE,
        max_size: int = MAX_SIZE,
        secret: str | bytes | None = None,
    ) -> type[CursorParams]:
        """A params class with other sizes and, with ``secret``, HMAC-signed cursors.

        Raises:
            ValueError: If the sizes are inconsistent or the secret is shorter than 32 bytes.
        """
        _check_sizes(default_size, max_size)
        key = secret.encode() if isinstance(secret, str) else secret
        if key is not None and len(key) < 32:
            raise ValueError("secret must be at least 32 bytes; use e.g. secrets.token_hex(32).")
        model = create_model(
            f"CursorParams_{default_size}_{max_size}",
            __base__=cls,
            size=(int, Field(default_size, ge=1, le=max_size, description="Items per page.")),
        )
        model.cursor_secret = key
        return model


class CursorPage(BaseModel, Generic[T]):
    """``{items, next_cursor, previous_cursor, size}``; a None cursor means no such page."""

    items: list[T]
    next_cursor: str | None
    previous_cursor: str | None
    size: int


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
    payload = json.dumps(
        {"k": [_encode_value(v) for v in values], "o": sort, "d": "p" if backward else "n"},
        separators=(",", ":"),  # NaN and +-Infinity too: float columns hold them
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


# --- sorting -----------------------------------------------------------------------------

_SORT_FIELD = re.compile(r"-?[A-Za-z_][A-Za-z0-9_]*")


class SortParams(_QueryModel):
    """``?sort=-created_at,name``: fields to sort by, ``-`` for descending.

    Only fields the endpoint allows are accepted (an unknown one is answered 422 naming
    the allowed ones); declare them with `allow`. Field names map to columns you choose,
    so user text never reaches SQL.

    Example:
        ```python
        ItemSort = SortParams.allow("created_at", "name", default="-created_at")

        @app.get("/items")
        async def items(sort: Annotated[ItemSort, Depends()], session: db.Session) -> ...:
            stmt = select(Item).order_by(*sort.order_by({"created_at": Item.created_at,
                                                          "name": Item.name}))
        ```
    """

    sort: str | None = Field(None, max_length=500, description="Fields, '-' for descending.")

    allowed: ClassVar[tuple[str, ...]] = ()
    default: ClassVar[str | None] = None

    @field_validator("sort")
    @classmethod
    def _check_sort(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        seen: set[str] = set()
        for part in value.split(","):
            part = part.strip()
            if not _SORT_FIELD.fullmatch(part):
                raise ValueError(
                    f"sort must be comma-separated field names, '-' for descending; "
                    f"allowed: {', '.join(cls.allowed) or 'none'}"
                )
            name = part.lstrip("-")
            if name not in cls.allowed:
                raise ValueError(
                    f"cannot sort by {name!r}; allowed: {', '.join(cls.allowed) or 'none'}"
                )
            if name in seen:
                raise ValueError(f"{name!r} is listed twice")
            seen.add(name)
        return value

    @property
    def fields(self) -> list[tuple[str, bool]]:
        """``[(name, descending), ...]`` from ``sort``, or the default."""
        text = self.sort or self.default or ""
        return [
            (part.strip().lstrip("-"), part.strip().startswith("-"))
            for part in text.split(",")
            if part.strip()
        ]

    def order_by(self, columns: Mapping[str, Any]) -> list[Any]:
        """ORDER BY clauses for SQLAlchemy: each allowed name mapped to its column.

        Raises:
            ValueError: If an allowed field has no column in ``columns`` (a server bug).
        """
        clauses = []
        for name, descending in self.fields:
            if name not in columns:
                raise ValueError(f"SortParams field {name!r} has no column in order_by().")
            column = columns[name]
            clauses.append(column.desc() if descending else column.asc())
        return clauses

    @classmethod
    def allow(cls, *fields: str, default: str | None = None) -> type[SortParams]:
        """A sort params class accepting ``fields`` (and ``default`` when none is given).

        Raises:
            ValueError: If a field name is not an identifier or ``default`` is not allowed.
        """
        if not fields:
            raise ValueError("allow() needs at least one field name, e.g. allow('created_at').")
        if len(set(fields)) != len(fields):
            raise ValueError(f"allow() lists a field twice: {list(fields)}; list each once.")
        for field in fields:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
                raise ValueError(f"Sort field {field!r} must be an identifier, e.g. 'created_at'.")
        model = create_model(f"SortParams_{'_'.join(fields)}", __base__=cls)
        model.allowed = tuple(fields)
        if default is not None:
            try:
                model._check_sort(default)
            except ValueError as error:
                raise ValueError(f"default sort {default!r} is invalid: {error}.") from None
        model.default = default
        return model


# --- in-memory sequences -----------------------------------------------------------------


@overload
def paginate(
    sequence: Sequence[T],
    params: PageParams,
    *,
    transformer: Callable[[Sequence[T]], Sequence[Any]] | None = None,
) -> Page[Any]: ...
@overload
def paginate(
    sequence: Sequence[T],
    params: LimitOffsetParams,
    *,
    transformer: Callable[[Sequence[T]], Sequence[Any]] | None = None,
) -> LimitOffsetPage[Any]: ...
def paginate(
    sequence: Sequence[T],
    params: PageParams | LimitOffsetParams,
    *,
    transformer: Callable[[Sequence[T]], Sequence[Any]] | None = None,
) -> Page[Any] | LimitOffsetPage[Any]:
    """Slice an in-memory sequence into a `Page` or `LimitOffsetPage`.

    Args:
        sequence: Any sequence (list, tuple...), already in the order to show.
        params: `PageParams` (answers a `Page`) or `LimitOffsetParams` (a `LimitOffsetPage`).
        transformer: Maps the page's items (e.g. ORM objects to response models).

    Raises:
        TypeError: For `CursorParams`: cursors need a sort key; use ``fastkit.db.apaginate``.
    """
    if isinstance(params, PageParams):
        offset, limit = params.offset, params.page_size
    elif isinstance(params, LimitOffsetParams):
        offset, limit = params.offset, params.limit
    else:
        raise TypeError(
            "paginate() takes PageParams or LimitOffsetParams; for cursors use fastkit.db."
        )
    items: Sequence[Any] = sequence[offset : offset + limit]
    if transformer is not None:
        items = transformer(items)
    if isinstance(params, PageParams):
        return _PAGE.create(items, len(sequence), params)
    return _LIMIT_OFFSET_PAGE.create(items, len(sequence), params)


_PAGE = Page[Any]
_LIMIT_OFFSET_PAGE = LimitOffsetPage[Any]
