"""Page models: `Page`, `LimitOffsetPage` and `CursorPage`, each built with ``create``.

Generic over the item type (``Page[ItemOut]`` shows the item schema in OpenAPI). The
paginators build them through their params' ``create_page``; build one yourself with
``create`` when you fetch the items some other way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel, computed_field

if TYPE_CHECKING:
    from fastkit.pagination.params import CursorParams, LimitOffsetParams, PageParams

__all__ = ["CursorPage", "LimitOffsetPage", "Page"]

T = TypeVar("T")


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
        """Build a page from its items, the total count and the params that asked for it."""
        return cls(items=list(items), total=total, limit=params.limit, offset=params.offset)


class CursorPage(BaseModel, Generic[T]):
    """``{items, next_cursor, previous_cursor, page_size}``; a None cursor means no such page.

    Until 0.3 the page also carries ``size``, the same number under its 0.1 name (marked
    deprecated in the schema).
    """

    items: list[T]
    next_cursor: str | None
    previous_cursor: str | None
    page_size: int

    @computed_field(  # type: ignore[prop-decorator]
        description="Deprecated: the same as page_size; removed in 0.3.",
        json_schema_extra={"deprecated": True},
    )
    @property
    def size(self) -> int:
        """Deprecated: `page_size` under its 0.1 name, until 0.3."""
        return self.page_size

    @classmethod
    def create(
        cls,
        items: Sequence[T],
        params: CursorParams,
        *,
        next_cursor: str | None = None,
        previous_cursor: str | None = None,
    ) -> CursorPage[T]:
        """Build a page from its items, the params that asked for it and the neighbours'
        cursors (made with `encode_cursor`; None where there is no such page)."""
        return cls(
            items=list(items),
            next_cursor=next_cursor,
            previous_cursor=previous_cursor,
            page_size=params.page_size,
        )
