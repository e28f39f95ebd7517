"""Page, limit-offset and cursor pagination: query models, page models, cursors.

Plain Pydantic models and functions, no app patching. Declare a params model as
``Annotated[PageParams, Query()]`` and return a page model. `paginate` slices in-memory
sequences; SQLAlchemy queries go through `fastkit.pagination.sql` (also exported as
``fastkit.db.apaginate`` / ``fastkit.db.paginate``). This package imports no SQLAlchemy.

- `fastkit.pagination.params`: the query models and their raw form;
- `fastkit.pagination.pages`: the page models;
- `fastkit.pagination.cursor`: the cursor codec;
- `fastkit.pagination.sequences`: `paginate` for sequences;
- `fastkit.pagination.sql`: keyset and offset pagination of SQLAlchemy ``Select``.
"""

from fastkit.pagination.cursor import InvalidCursor, decode_cursor, encode_cursor
from fastkit.pagination.pages import CursorPage, LimitOffsetPage, Page
from fastkit.pagination.params import (
    DEFAULT_SIZE,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_SIZE,
    CursorParams,
    CursorRawParams,
    LimitOffsetParams,
    PageParams,
    RawParams,
    SortParams,
)
from fastkit.pagination.sequences import paginate

__all__ = [
    "DEFAULT_SIZE",
    "MAX_OFFSET",
    "MAX_PAGE",
    "MAX_SIZE",
    "CursorPage",
    "CursorParams",
    "CursorRawParams",
    "InvalidCursor",
    "LimitOffsetPage",
    "LimitOffsetParams",
    "Page",
    "PageParams",
    "RawParams",
    "SortParams",
    "decode_cursor",
    "encode_cursor",
    "paginate",
]
