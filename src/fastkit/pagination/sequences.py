"""`paginate`: one page of an in-memory sequence (a list, a tuple, a cached result)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from fastkit.pagination.pages import LimitOffsetPage, Page
from fastkit.pagination.params import LimitOffsetParams, PageParams, RawParams

__all__ = ["paginate"]

T = TypeVar("T")


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
    raw = params.to_raw_params() if hasattr(params, "to_raw_params") else None
    if not isinstance(raw, RawParams):
        raise TypeError(
            "paginate() takes PageParams or LimitOffsetParams; for cursors use "
            "fastkit.db.apaginate on a SQLAlchemy query."
        )
    items: Sequence[Any] = sequence[raw.offset : raw.offset + raw.limit]
    if transformer is not None:
        items = transformer(items)
    return params.create_page(items, len(sequence))
