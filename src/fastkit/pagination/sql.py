"""Pagination of SQLAlchemy ``Select`` statements: offset pages and keyset cursors.

Needs the ``sqlalchemy`` extra. `apaginate` (``AsyncSession``) and `paginate` (``Session``)
take any params model of `fastkit.pagination.params`; the params' raw form decides, once,
whether the page is an offset or a keyset page. Also exported as ``fastkit.db.apaginate``
and ``fastkit.db.paginate``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastkit._compat import require

require("sqlalchemy", "sqlalchemy")

from sqlalchemy import Select, and_, exc, func, literal, or_, select, tuple_  # noqa: E402
from sqlalchemy.engine import Row  # noqa: E402
from sqlalchemy.orm import ColumnProperty, QueryableAttribute  # noqa: E402
from sqlalchemy.sql import operators  # noqa: E402
from sqlalchemy.sql.elements import UnaryExpression  # noqa: E402

from fastkit.pagination.cursor import InvalidCursor, decode_cursor, encode_cursor  # noqa: E402
from fastkit.pagination.params import (  # noqa: E402
    CursorParams,
    CursorRawParams,
    LimitOffsetParams,
    PageParams,
    RawParams,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["apaginate", "paginate"]

Transformer = Callable[[Sequence[Any]], Sequence[Any]]

_ORDER_MODIFIERS = (
    operators.desc_op,
    operators.asc_op,
    operators.nulls_first_op,
    operators.nulls_last_op,
)
_KEY_LABEL = "_fastkit_key_{}"
# What binding an out-of-range cursor value raises, depending on the driver.
_CURSOR_VALUE_ERRORS = (exc.DataError, exc.StatementError, OverflowError, UnicodeEncodeError)


def _order_keys(stmt: Select[Any]) -> list[tuple[Any, bool]]:
    """The statement's ORDER BY as ``[(column, descending), ...]``."""
    keys = []
    # No public accessor for a Select's ORDER BY: this attribute is stable across 1.4/2.x.
    for clause in stmt._order_by_clauses:
        element, descending = clause, False
        while isinstance(element, UnaryExpression) and element.modifier in _ORDER_MODIFIERS:
            if element.modifier is operators.desc_op:
                descending = True
            element = element.element
        keys.append((element, descending))
    return keys


def _key_name(column: Any) -> str:
    name = getattr(column, "key", None) or getattr(column, "name", None)
    if not isinstance(name, str) or type(column).__name__.endswith("label_reference"):
        raise ValueError(
            "Cursor pagination sorts by table columns; for an expression, add a column "
            "(e.g. a generated or indexed lowercase name) and sort by it."
        )
    return name


def _python_type(column: Any) -> type | None:
    try:
        return column.type.python_type  # type: ignore[no-any-return]
    except (AttributeError, NotImplementedError):
        return None


class _Key:
    """One sort key, read once: the column, its direction and its name."""

    __slots__ = ("column", "descending", "name", "table")

    def __init__(self, column: Any, descending: bool) -> None:
        self.column = column
        self.descending = descending
        self.name = _key_name(column)
        self.table = getattr(column, "table", None)
        # A keyset cannot compare NULLs: rows would be skipped without a word.
        if getattr(getattr(column, "expression", column), "nullable", False) is True:
            raise ValueError(
                f"Cursor pagination needs NOT NULL sort keys; {self.name!r} is nullable. "
                "Sort by non-nullable columns."
            )


def _sort_keys(
    stmt: Select[Any], entity: Any, descriptions: Sequence[Mapping[str, Any]]
) -> tuple[list[_Key], list[Any]]:
    """The sort keys, made total, and the primary-key columns appended to get there.

    The entity's primary key is appended when not sorted by: for ``select(Item)`` always
    (no ORDER BY pages by the key). For columns that all belong to one entity
    (``select(Item.name, Item.score).order_by(Item.score)``) unless the statement has
    GROUP BY or DISTINCT (its rows are then not the entity's), and, for several columns,
    only with an ORDER BY: the key is sorted by and read as a hidden cursor key, not added
    to the items.
    """
    keys = [_Key(column, descending) for column, descending in _order_keys(stmt)]
    whole = len(descriptions) == 1 and descriptions[0].get("expr") is entity
    grouped = bool(getattr(stmt, "_group_by_clauses", ())) or bool(
        getattr(stmt, "_distinct", False)
    )
    if not whole and (grouped or (len(descriptions) > 1 and not keys)):
        entity = None
    mapper = getattr(entity, "__mapper__", None)
    appended = []
    if mapper is not None:
        sorted_by = {(k.table, k.name) for k in keys}
        for column in mapper.primary_key:
            if (column.table, column.key) not in sorted_by:
                appended.append(column)
                # By the mapped attribute: its name may differ from the column's.
                attribute = getattr(entity, mapper.get_property_by_column(column).key)
                keys.append(_Key(attribute, False))
    if not keys:
        raise ValueError(
            "Cursor pagination needs an ORDER BY ending in a unique column, "
            "e.g. select(Item).order_by(Item.created_at, Item.id)."
        )
    return keys, appended


@functools.lru_cache(maxsize=256)
def _column_properties(mapper: Any) -> dict[tuple[Any, str], Any]:
    """``{(table, column key): column property}`` of a mapper.

    ``mapper.get_property_by_column`` would find them too, but it compares columns with
    ``==``, which builds a SQL expression per comparison: several times dearer here.
    """
    return {
        (column.table, column.key): prop
        for prop in mapper.column_attrs
        for column in prop.columns
        if getattr(column, "table", None) is not None
    }


def _attribute_names(
    stmt: Select[Any],
    entity: Any,
    descriptions: Sequence[Mapping[str, Any]],
    keys: list[_Key],
    session_empty: bool,
) -> list[str] | None:
    """For ``select(Entity)``: the attribute each key is read from on a loaded entity.

    Only for a session that holds no objects yet (the usual request-scoped session): an
    object it already held would keep its in-memory values, stale or changed and not
    flushed, over the row's, and a cursor made from those would skip or repeat rows. None
    when the session holds objects, the rows are not whole entities, the statement has
    loader options, or a key is not an eagerly loaded column attribute of the entity: the
    keys are then selected as extra labelled columns, read from the rows the database
    sorted. Reading them from the entities keeps the query the one the endpoint wrote (the
    same ORM loading as ``session.scalars(stmt)``, no key parsed twice per row).
    """
    mapper = getattr(entity, "__mapper__", None)
    whole = len(descriptions) == 1 and descriptions[0].get("expr") is entity
    if not session_empty or mapper is None or not whole or getattr(stmt, "_with_options", None):
        return None
    names = []
    for key in keys:
        prop: Any
        if isinstance(key.column, QueryableAttribute):  # a mapped attribute (Item.id)
            if not mapper.isa(key.column.parent):
                return None
            prop = key.column.property
        else:  # a column of the statement's ORDER BY
            prop = _column_properties(mapper).get((key.table, key.name))
        if not isinstance(prop, ColumnProperty) or prop.deferred:
            return None
        names.append(prop.key)
    return names


def _keyset_condition(keys: Sequence[tuple[Any, bool]], values: Sequence[Any]) -> Any:
    """Rows strictly after ``values`` in the order ``keys`` (descending flags included)."""
    directions = {descending for _, descending in keys}
    if len(directions) == 1 and len(keys) > 1:
        # One direction: a row-value comparison, which indexes on (k1, k2...) serve. The
        # tuple binds each value with its column's type (custom types convert the value as
        # they store it), as literal(v, type_=column.type) would, for less work.
        left = tuple_(*(c for c, _ in keys))
        return left < tuple(values) if directions == {True} else left > tuple(values)
    # Bound with the column's type here too: a bare True/False cannot take < or >.
    bound = [literal(v, type_=c.type) for (c, _), v in zip(keys, values, strict=True)]
    clauses = []
    for i, (column, descending) in enumerate(keys):
        equal = [keys[j][0] == bound[j] for j in range(i)]
        clauses.append(and_(*equal, column < bound[i] if descending else column > bound[i]))
    return or_(*clauses)


def _item_reader(descriptions: Sequence[Mapping[str, Any]]) -> Callable[[Row[Any]], Any]:
    """Rows to items: the entity (or single column) itself, else a dict of the columns."""
    width = len(descriptions)
    if width == 1:
        return lambda row: row[0]
    return lambda row: dict(zip(row._fields[:width], row[:width], strict=True))


class _OffsetPlan:
    """``LIMIT/OFFSET`` plus, unless skipped, one ``SELECT count(*)``."""

    def __init__(self, stmt: Select[Any], params: Any, raw: RawParams, include_total: bool) -> None:
        self.params = params
        descriptions = stmt.column_descriptions
        # One entity or column: run as session.scalars(), the rows are the items.
        self.scalar = len(descriptions) == 1
        self.item = _item_reader(descriptions)
        self.count: Select[Any] | None = None
        if include_total:
            self.count = select(func.count()).select_from(stmt.order_by(None).subquery())
        self.query = stmt.limit(raw.limit).offset(raw.offset)

    def bad_cursor_value(self, error: BaseException) -> None:
        """Offset pages bind no cursor values: the error is the statement's own."""

    def page(self, rows: Sequence[Any], total: int | None, transformer: Transformer | None) -> Any:
        items: Sequence[Any] = rows if self.scalar else [self.item(row) for row in rows]
        if transformer is not None:
            items = transformer(items)
        return self.params.create_page(items, total)


class _CursorPlan:
    """A keyset page: ``WHERE (k1, k2) > (...) ORDER BY k1, k2 LIMIT size + 1``."""

    count = None

    def __init__(
        self, stmt: Select[Any], params: Any, raw: CursorRawParams, session_empty: bool
    ) -> None:
        self.params = params
        self.size = raw.size
        self.secret = raw.secret
        descriptions = stmt.column_descriptions
        self.item = _item_reader(descriptions)
        entities = {d.get("entity") for d in descriptions}
        entity = entities.pop() if len(entities) == 1 else None
        keys, appended = _sort_keys(stmt, entity, descriptions)
        self.keys = keys
        self.signature = ",".join(("-" if k.descending else "") + k.name for k in keys)
        self.values: list[Any] | None = None
        self.backward = False
        if raw.cursor is not None:
            self.values, self.backward = decode_cursor(
                raw.cursor,
                self.signature,
                secret=raw.secret,
                types=[_python_type(k.column) for k in keys],
            )
        # Walking backward: the same query in the opposite order, reversed afterwards.
        effective = [(k.column, k.descending != self.backward) for k in keys]
        if self.backward:
            query = stmt.order_by(None).order_by(
                *(c.desc() if d else c.asc() for c, d in effective)
            )
        else:
            query = stmt.order_by(*appended) if appended else stmt
        if self.values is not None:
            query = query.where(_keyset_condition(effective, self.values))
        self.names = _attribute_names(stmt, entity, descriptions, keys, session_empty)
        # Keys read from the entities: run as session.scalars(), the rows are the items.
        self.scalar = self.names is not None
        if self.names is None:
            labels = [k.column.label(_KEY_LABEL.format(i)) for i, k in enumerate(keys)]
            query = query.add_columns(*labels)
        self.query = query.limit(raw.size + 1)

    def _key_values(self, row: Any) -> list[Any]:
        if self.names is None:
            return list(row[-len(self.keys) :])
        return [getattr(row, name) for name in self.names]

    def bad_cursor_value(self, error: BaseException) -> None:
        """A cursor value the database cannot bind (too large for the column...): 400."""
        if self.values is not None:
            raise InvalidCursor("Invalid cursor: a value is out of range.") from error

    def _cursor(self, values: list[Any] | None, backward: bool) -> str | None:
        if values is None:
            return None
        if any(v is None for v in values):
            raise ValueError(
                "Cursor pagination needs NOT NULL sort keys; a row has NULL in "
                f"{self.signature!r}. Sort by non-nullable columns."
            )
        return encode_cursor(values, self.signature, backward=backward, secret=self.secret)

    def page(self, rows: Sequence[Any], total: int | None, transformer: Transformer | None) -> Any:
        more = len(rows) > self.size
        rows = list(rows[: self.size])
        if self.backward:
            rows.reverse()
        first = self._key_values(rows[0]) if rows else self.values
        last = self._key_values(rows[-1]) if rows else self.values
        if self.backward:
            previous_cursor = self._cursor(first, True) if more else None
            next_cursor = self._cursor(last, False)
        else:
            next_cursor = self._cursor(last, False) if more else None
            previous_cursor = self._cursor(first, True) if self.values is not None else None
        items: Sequence[Any] = rows if self.scalar else [self.item(row) for row in rows]
        if transformer is not None:
            items = transformer(items)
        return self.params.create_page(
            items, next_cursor=next_cursor, previous_cursor=previous_cursor
        )


def _plan(
    stmt: Select[Any], params: Any, include_total: bool, session_empty: bool
) -> _OffsetPlan | _CursorPlan:
    # The one place that tells offset from cursor pages: by the params' raw form.
    to_raw = getattr(params, "to_raw_params", None)
    raw = to_raw() if callable(to_raw) else None
    if isinstance(raw, CursorRawParams):
        return _CursorPlan(stmt, params, raw, session_empty)
    if isinstance(raw, RawParams):
        return _OffsetPlan(stmt, params, raw, include_total)
    raise TypeError("params must be PageParams, LimitOffsetParams or CursorParams.")


async def apaginate(
    session: AsyncSession,
    stmt: Select[Any],
    params: PageParams | LimitOffsetParams | CursorParams,
    *,
    include_total: bool = True,
    transformer: Transformer | None = None,
) -> Any:
    """Run one page of ``stmt`` and return a `Page`, `LimitOffsetPage` or `CursorPage`.

    - `PageParams` / `LimitOffsetParams`: ``LIMIT/OFFSET`` plus one ``SELECT count(*)``
      over the statement without its ORDER BY (``include_total=False`` skips it; ``total``
      and ``pages`` are then None).
    - `CursorParams`: keyset pagination over the statement's ORDER BY (the entity's
      primary key is appended as tie-breaker when missing): ``WHERE (k1, k2) > (...)``,
      so a page costs the same at any depth and concurrent inserts never make a row
      appear twice or be skipped. Bad cursors are answered 400 (`InvalidCursor`).

    Items are the entities for ``select(Model)`` (or the single column), otherwise dicts
    of the selected columns; ``transformer`` maps the list (e.g. to response models).

    Example:
        ```python
        @app.get("/items")
        async def items(session: db.Session, params: Annotated[CursorParams, Query()]
                        ) -> CursorPage[ItemOut]:
            stmt = select(Item).order_by(Item.created_at.desc())
            return await apaginate(session, stmt, params)
        ```
    """
    plan = _plan(stmt, params, include_total, len(session.identity_map) == 0)
    total = None
    if plan.count is not None:
        total = int(await session.scalar(plan.count) or 0)
    try:
        if plan.scalar:
            rows: Sequence[Any] = (await session.scalars(plan.query)).all()
        else:
            rows = (await session.execute(plan.query)).all()
    except _CURSOR_VALUE_ERRORS as error:
        plan.bad_cursor_value(error)
        raise
    return plan.page(rows, total, transformer)


def paginate(
    session: Session,
    stmt: Select[Any],
    params: PageParams | LimitOffsetParams | CursorParams,
    *,
    include_total: bool = True,
    transformer: Transformer | None = None,
) -> Any:
    """The sync twin of `apaginate`, for ``SyncDatabase`` sessions."""
    plan = _plan(stmt, params, include_total, len(session.identity_map) == 0)
    total = None
    if plan.count is not None:
        total = int(session.scalar(plan.count) or 0)
    try:
        if plan.scalar:
            rows: Sequence[Any] = session.scalars(plan.query).all()
        else:
            rows = session.execute(plan.query).all()
    except _CURSOR_VALUE_ERRORS as error:
        plan.bad_cursor_value(error)
        raise
    return plan.page(rows, total, transformer)
