"""Query models: ``?page=&page_size=``, ``?limit=&offset=``, ``?cursor=&page_size=``, ``?sort=``.

Declare them as ``Annotated[PageParams, Query()]``: FastAPI validates the query string into
the model on the event loop (``Depends(PageParams)`` would build it in a worker thread on
every request). Each params model turns itself into plain data with `to_raw_params`
(`RawParams` offset/limit or `CursorRawParams`), which is all the paginators read, and
builds its page with `create_page`.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic._internal._model_construction import ModelMetaclass  # pydantic 2's, stable

from fastkit.pagination.pages import CursorPage, LimitOffsetPage, Page

__all__ = [
    "CursorParams",
    "CursorRawParams",
    "LimitOffsetParams",
    "PageParams",
    "RawParams",
    "SortParams",
]

DEFAULT_SIZE = 20
MAX_SIZE = 100
# Upper bounds for page and offset: deeper offset pages cost time in proportion to their
# depth (use cursors there), and larger numbers would overflow database integers.
MAX_PAGE = 1_000_000
MAX_OFFSET = 100_000_000
# CursorParams' page size: ?page_size= as PageParams, and 0.1's ?size= for a release.
_PAGE_SIZE = AliasChoices("page_size", "size")


@dataclass(frozen=True, slots=True)
class RawParams:
    """What an offset paginator needs: skip ``offset`` items, return at most ``limit``."""

    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class CursorRawParams:
    """What a keyset paginator needs: where to start (None: the first page), the page size,
    and the key that signs cursors (None: unsigned)."""

    cursor: str | None
    size: int
    secret: bytes | None


class _QueryModelMeta(ModelMetaclass):
    """Calling the class (``Model(**params)``) answers 422, never 500, on bad values.

    Under ``Depends(Model)`` FastAPI calls the class, and a validator's error would escape
    as a 500: it becomes the same ``RequestValidationError`` (located in the query string).
    Under ``Annotated[Model, Query()]`` FastAPI validates the model itself, without calling
    the class, and collects its errors with every other parameter's: a hook in ``__init__``
    would run there too, and its exception would cut that collection short (one bad
    model's errors hiding all the others).
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        for old, new in cls._old_names.items():  # type: ignore[attr-defined]
            value = kwargs.pop(old, None)
            # Depends(Model) passes every parameter, the new name at its default when not
            # sent: there the old name wins over a new one sent at its default value.
            default = cls.model_fields[new].default  # type: ignore[attr-defined]
            if value is not None and kwargs.get(new, default) == default:
                kwargs[new] = value
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as error:
            raise RequestValidationError(
                [
                    {**err, "loc": ("query", *err["loc"])}
                    for err in error.errors(include_url=False, include_context=False)
                ]
            ) from None


class _QueryModel(BaseModel, metaclass=_QueryModelMeta):
    """Query parameters that answer 422, never 500, however they are declared."""

    # Deprecated query names still read, old -> new. Fields declare the old one in their
    # validation_alias (read under Query()); under Depends(Model) FastAPI reads the class
    # signature instead, so it gets the old names as hidden keyword parameters too.
    _old_names: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not cls._old_names:
            return
        signature = inspect.signature(cls)
        hidden = Annotated[int | None, Query(include_in_schema=False)]
        # Without the old names (a signature inherited from the parent has them), and with
        # them before a **kwargs (a model with extra="allow" has one).
        keep = [p for p in signature.parameters.values() if p.name not in cls._old_names]
        rest = [p for p in keep if p.kind is inspect.Parameter.VAR_KEYWORD]
        extra = [
            inspect.Parameter(old, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hidden)
            for old in cls._old_names
        ]
        cls.__signature__ = signature.replace(
            parameters=[*(p for p in keep if p not in rest), *extra, *rest]
        )


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
        async def list_items(params: Annotated[PageParams, Query()]) -> Page[Item]:
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

    def to_raw_params(self) -> RawParams:
        """``RawParams(limit=page_size, offset=(page - 1) * page_size)``."""
        return RawParams(self.page_size, (self.page - 1) * self.page_size)

    def create_page(self, items: Sequence[Any], total: int | None) -> Page[Any]:
        """The `Page` of ``items`` for these params (``total`` None: not counted)."""
        return _PAGE.create(items, total, self)

    @classmethod
    def configure(
        cls, *, default_size: int = DEFAULT_SIZE, max_size: int = MAX_SIZE
    ) -> type[PageParams]:
        """A params class with other page size default and maximum.

        Example:
            ```python
            BigPages = PageParams.configure(default_size=50, max_size=500)

            @app.get("/logs")
            async def logs(params: Annotated[BigPages, Query()]) -> Page[Log]: ...
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


# --- limit / offset -------------------------------------------------------------------------


class LimitOffsetParams(_QueryModel):
    """``?limit=20&offset=40``: 1-100 items (default 20), skipping ``offset`` (>= 0)."""

    limit: int = Field(DEFAULT_SIZE, ge=1, le=MAX_SIZE, description="Items to return.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Items to skip.")

    def to_raw_params(self) -> RawParams:
        """``RawParams(limit, offset)``."""
        return RawParams(self.limit, self.offset)

    def create_page(self, items: Sequence[Any], total: int | None) -> LimitOffsetPage[Any]:
        """The `LimitOffsetPage` of ``items`` for these params."""
        return _LIMIT_OFFSET_PAGE.create(items, total, self)

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


# --- cursors -----------------------------------------------------------------------------


class CursorParams(_QueryModel):
    """``?cursor=...&page_size=20``: keyset pagination; no cursor means the first page.

    Cursors are opaque; a garbled, mistyped, tampered one or one made for another sort is
    answered 400. Sign them with `configure` (``secret=``) so clients cannot forge them.

    The page size has the query name `PageParams` uses, ``page_size``. The name of 0.1,
    ``?size=``, is still read (deprecated, and gone in 0.3); ``page_size`` wins when a
    request sends both.
    """

    cursor: str | None = Field(None, max_length=4096, description="Opaque cursor from a page.")
    page_size: int = Field(
        DEFAULT_SIZE, ge=1, le=MAX_SIZE, description="Items per page.", validation_alias=_PAGE_SIZE
    )

    cursor_secret: ClassVar[bytes | None] = None
    _old_names: ClassVar[dict[str, str]] = {"size": "page_size"}

    def to_raw_params(self) -> CursorRawParams:
        """``CursorRawParams(cursor, page_size, secret)``, the secret from `configure`."""
        return CursorRawParams(self.cursor, self.page_size, self.cursor_secret)

    @property
    def size(self) -> int:
        """Deprecated: read `page_size` (``size`` goes in 0.3)."""
        warnings.warn(
            "CursorParams.size is deprecated; read page_size instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.page_size

    def create_page(
        self,
        items: Sequence[Any],
        *,
        next_cursor: str | None = None,
        previous_cursor: str | None = None,
    ) -> CursorPage[Any]:
        """The `CursorPage` of ``items`` with the cursors of its neighbours."""
        return _CURSOR_PAGE.create(
            items, self, next_cursor=next_cursor, previous_cursor=previous_cursor
        )

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
            page_size=(
                int,
                Field(
                    default_size,
                    ge=1,
                    le=max_size,
                    description="Items per page.",
                    validation_alias=_PAGE_SIZE,
                ),
            ),
        )
        model.cursor_secret = key
        return model


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
        async def items(sort: Annotated[ItemSort, Query()], session: db.Session) -> ...:
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


# Parametrized once: subscripting a generic model on every page costs tens of microseconds.
_PAGE = Page[Any]
_LIMIT_OFFSET_PAGE = LimitOffsetPage[Any]
_CURSOR_PAGE = CursorPage[Any]
