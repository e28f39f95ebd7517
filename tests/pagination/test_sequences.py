"""fastkit.pagination.paginate: pages of in-memory sequences."""

from typing import Any

import pytest
from pydantic import BaseModel

from fastkit.pagination import (
    CursorParams,
    LimitOffsetPage,
    LimitOffsetParams,
    Page,
    PageParams,
    paginate,
)


class Item(BaseModel):
    id: int
    name: str


# --- paginate() over sequences -------------------------------------------------------------

PAGE_TOTALS = [
    # (length, page, page_size) -> (first item, item count, pages)
    pytest.param(0, 1, 20, None, 0, 0, id="empty"),
    pytest.param(0, 3, 20, None, 0, 0, id="empty-page-3"),
    pytest.param(40, 1, 20, 0, 20, 2, id="exact-first"),
    pytest.param(40, 2, 20, 20, 20, 2, id="exact-last"),
    pytest.param(40, 3, 20, None, 0, 2, id="exact-past-end"),
    pytest.param(57, 3, 20, 40, 17, 3, id="partial-last"),
    pytest.param(57, 1, 100, 0, 57, 1, id="one-page"),
    pytest.param(1, 1, 1, 0, 1, 1, id="single"),
    pytest.param(5, 2, 4, 4, 1, 2, id="one-left"),
]


@pytest.mark.parametrize(("length", "page", "size", "first", "count", "pages"), PAGE_TOTALS)
def test_paginate_sequence_pages(
    length: int, page: int, size: int, first: int | None, count: int, pages: int
) -> None:
    items = list(range(length))
    result = paginate(items, PageParams(page=page, page_size=size))
    assert isinstance(result, Page)
    assert result.items == items[(page - 1) * size : page * size]
    assert len(result.items) == count
    assert (result.items[0] if result.items else None) == first
    assert (result.total, result.page, result.page_size, result.pages) == (
        length,
        page,
        size,
        pages,
    )


@pytest.mark.parametrize(
    ("length", "limit", "offset", "expected"),
    [
        pytest.param(0, 20, 0, [], id="empty"),
        pytest.param(10, 3, 0, [0, 1, 2], id="first"),
        pytest.param(10, 3, 8, [8, 9], id="partial"),
        pytest.param(10, 3, 10, [], id="past-end"),
    ],
)
def test_paginate_sequence_limit_offset(
    length: int, limit: int, offset: int, expected: list[int]
) -> None:
    result = paginate(tuple(range(length)), LimitOffsetParams(limit=limit, offset=offset))
    assert isinstance(result, LimitOffsetPage)
    assert result.model_dump() == {
        "items": expected,
        "total": length,
        "limit": limit,
        "offset": offset,
    }


def test_paginate_sequence_transformer_sees_only_the_page() -> None:
    seen: list[list[int]] = []

    def to_items(numbers: Any) -> list[Item]:
        seen.append(list(numbers))
        return [Item(id=n, name=f"item-{n}") for n in numbers]

    result = paginate(list(range(10)), PageParams(page=2, page_size=4), transformer=to_items)
    assert seen == [[4, 5, 6, 7]]
    assert [item.name for item in result.items] == ["item-4", "item-5", "item-6", "item-7"]
    assert result.total == 10


def test_paginate_sequence_refuses_cursors() -> None:
    with pytest.raises(TypeError, match=r"fastkit\.db"):
        paginate([1, 2], CursorParams())  # type: ignore[call-overload]


def test_page_without_total_has_no_pages() -> None:
    page = Page[int].create([1, 2], None, PageParams(page=2, page_size=2))
    assert (page.total, page.pages, page.page, page.page_size) == (None, None, 2, 2)
