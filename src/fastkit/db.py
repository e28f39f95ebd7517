"""SQLAlchemy sessions you can trust: commit before respond, errors mapped, nothing leaked.

Needs the ``sqlalchemy`` extra (``pip install "fastkit[sqlalchemy]"``); PostgreSQL drivers
come with ``fastkit[postgres]``.

FastAPI runs a ``yield`` dependency's exit code *after* the response is sent unless the
dependency is declared with ``scope="function"``; a commit there that fails would already
have answered 200. `Database.session` is meant to be used through `Database.Session`
(or `Database.depends`), which carries that scope, so the commit happens after the
endpoint returns and before the response goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends

from fastkit._compat import MissingDependencyError, require
from fastkit.errors import BadRequest, Conflict, ServiceUnavailable

require("sqlalchemy", "sqlalchemy")

from sqlalchemy import Select, and_, event, exc, func, literal, or_, select, text, tuple_  # noqa: E402
from sqlalchemy.engine import Engine, Row, make_url  # noqa: E402
from sqlalchemy.engine.url import URL  # noqa: E402
from sqlalchemy.orm import Session as SyncSession  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402
from sqlalchemy.pool import StaticPool  # noqa: E402
from sqlalchemy.sql import operators  # noqa: E402
from sqlalchemy.sql.elements import UnaryExpression  # noqa: E402

from fastkit.pagination import (  # noqa: E402
    CursorPage,
    CursorParams,
    InvalidCursor,
    LimitOffsetPage,
    LimitOffsetParams,
    Page,
    PageParams,
    decode_cursor,
    encode_cursor,
)

_ORDER_MODIFIERS = (
    operators.desc_op,
    operators.asc_op,
    operators.nulls_first_op,
    operators.nulls_last_op,
)

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

__all__ = [
    "DATABASE_UNAVAILABLE",
    "INTEGRITY_CONFLICT",
    "Database",
    "SyncDatabase",
    "apaginate",
    "paginate",
    "translate_error",
]

logger = logging.getLogger("fastkit.db")

DATABASE_UNAVAILABLE = "Database unavailable"
INTEGRITY_CONFLICT = "The request conflicts with existing data"
VALUE_REJECTED = "A value is out of range or invalid for the database"

# Drivers, by the extra that installs them.
_DRIVER_EXTRAS = {
    "aiosqlite": "sqlalchemy",
    "asyncpg": "postgres",
    "psycopg": "postgres",
    "psycopg2": "postgres",
}
# Modules whose frames mark an OSError/TimeoutError as the database's (not the endpoint's).
_DB_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "psycopg", "psycopg2", "sqlite3")


def _raised_by_database(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.split(".", 1)[0] in _DB_MODULES:
            return True
        tb = tb.tb_next
    return False


def _driver_refused_value(error: exc.DBAPIError) -> bool:
    """A value the driver or server refused as data (SQLSTATE class 22, or a ValueError).

    asyncpg reports a parameter it cannot encode (``invalid input for query argument``,
    e.g. out of int32 range) with its ``DataError`` (SQLSTATE 22000), which SQLAlchemy
    wraps as a plain ``DBAPIError``.
    """
    for candidate in (error.orig, error.orig.__cause__ if error.orig is not None else None):
        if isinstance(candidate, (ValueError, OverflowError)):
            return True
        sqlstate = getattr(candidate, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return True
    return False


def translate_error(error: BaseException) -> BaseException:
    """Map a database error to the `AppError` the client should see.

    ``IntegrityError`` becomes `Conflict` (409); a value the database cannot take
    (``DataError``: out of range, invalid text for the column's type; or a Python int too
    large for the driver, such as ``/items/99999999999999999999``) becomes `BadRequest`
    (400; bound your parameters, e.g. ``Path(le=2**31 - 1)``, to answer 422 before the
    query instead); connection problems (``OperationalError``,
    ``InterfaceError``, disconnects, pool and driver timeouts, refused connections) become
    `ServiceUnavailable` (503, "Database unavailable").
    Anything else is returned unchanged. The messages name no SQL and no values; raise the
    result ``from`` the original so it stays chained for the logs.
    """
    if isinstance(error, exc.IntegrityError):
        return Conflict(INTEGRITY_CONFLICT)
    if isinstance(error, exc.DataError) or (
        isinstance(error, OverflowError) and _raised_by_database(error)
    ):
        return BadRequest(VALUE_REJECTED)
    if isinstance(error, exc.DBAPIError) and _driver_refused_value(error):
        return BadRequest(VALUE_REJECTED)
    if isinstance(
        error,
        (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError),
    ):
        return ServiceUnavailable(DATABASE_UNAVAILABLE)
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return ServiceUnavailable(DATABASE_UNAVAILABLE)
    network = (ConnectionError, TimeoutError, asyncio.TimeoutError, socket.gaierror)
    if isinstance(error, network) and _raised_by_database(error):
        return ServiceUnavailable(DATABASE_UNAVAILABLE)
    return error


def _reraise_translated(error: BaseException) -> None:
    mapped = translate_error(error)
    if mapped is error:
        return
    logger.warning(
        "Database error answered as %s: %s",
        type(mapped).__name__,
        type(error).__name__,
        exc_info=(type(error), error, error.__traceback__),
    )
    raise mapped from error


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except exc.ArgumentError:
        raise ValueError(
            f"Cannot parse database URL {str(url)!r}; write e.g. 'sqlite+aiosqlite:///./app.db'."
        ) from None


def _missing_driver(error: ImportError, url: URL) -> MissingDependencyError | ImportError:
    name = getattr(error, "name", None) or url.get_driver_name()
    package = name.split(".", 1)[0]
    extra = _DRIVER_EXTRAS.get(package)
    if extra is None:
        return error
    return MissingDependencyError(package, extra)


def _sqlite_options(url: URL, engine_kwargs: dict[str, Any], *, sync: bool) -> None:
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    memory = database in ("", ":memory:") or "mode=memory" in str(url)
    connect_args = engine_kwargs.setdefault("connect_args", {})
    if sync:
        # FastAPI runs sync endpoints in a threadpool: connections cross threads.
        connect_args.setdefault("check_same_thread", False)
    if memory:
        # One shared connection, or every checkout would see a different empty database.
        engine_kwargs.setdefault("poolclass", StaticPool)


def _install_sqlite_pragmas(sync_engine: Engine, url: URL, *, wal: bool) -> None:
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    use_wal = wal and database not in ("", ":memory:") and "mode=memory" not in str(url)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if use_wal:
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()


class Database:
    """An async SQLAlchemy engine, session factory and request-scoped session dependency.

    Args:
        url: A SQLAlchemy URL with an async driver: ``sqlite+aiosqlite:///./app.db``
            (default), ``postgresql+asyncpg://user:pass@host/db``.
        echo: Log SQL statements.
        sqlite_wal: On SQLite files, switch to WAL journaling (readers do not block the
            writer). ``foreign_keys=ON`` is always set on SQLite.
        **engine_kwargs: Passed to ``create_async_engine`` (``pool_size``,
            ``pool_pre_ping``, ``connect_args``...).

    Raises:
        ValueError: If the URL cannot be parsed, names an unknown database, or a sync driver.
        MissingDependencyError: If the driver's extra is not installed.

    Example:
        ```python
        db = Database("sqlite+aiosqlite:///./app.db")
        app = FastAPI(lifespan=db.lifespan)

        @app.post("/items", status_code=201)
        async def create_item(body: ItemIn, session: db.Session) -> ItemOut:
            item = Item(**body.model_dump())
            session.add(item)
            await session.flush()  # the commit happens before the 201 is sent
            return ItemOut.model_validate(item, from_attributes=True)
        ```
    """

    def __init__(
        self,
        url: str | URL = "sqlite+aiosqlite:///./app.db",
        *,
        echo: bool = False,
        sqlite_wal: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        asyncio_ext = require("sqlalchemy.ext.asyncio", "sqlalchemy")
        self.url = _parse_url(url)
        _sqlite_options(self.url, engine_kwargs, sync=False)
        try:
            engine: AsyncEngine = asyncio_ext.create_async_engine(
                self.url, echo=echo, **engine_kwargs
            )
        except exc.NoSuchModuleError:
            raise ValueError(
                f"Unknown database URL scheme {self.url.drivername!r}; use e.g. "
                "'sqlite+aiosqlite://' or 'postgresql+asyncpg://'."
            ) from None
        except exc.InvalidRequestError as error:
            if "async" not in str(error):
                raise
            raise ValueError(
                f"{self.url.drivername!r} is not an async driver; use e.g. "
                "'sqlite+aiosqlite://' or 'postgresql+asyncpg://' (or SyncDatabase)."
            ) from None
        except ImportError as error:
            raise _missing_driver(error, self.url) from error
        self.engine = engine
        _install_sqlite_pragmas(engine.sync_engine, self.url, wal=sqlite_wal)
        self.sessionmaker: async_sessionmaker[AsyncSession] = asyncio_ext.async_sessionmaker(
            engine, expire_on_commit=False
        )
        #: ``Depends(db.session, scope="function")``: commit before the response.
        self.depends = Depends(self.session, scope="function")
        #: ``Annotated[AsyncSession, Depends(db.session, scope="function")]``.
        self.Session: Any = Annotated[asyncio_ext.AsyncSession, self.depends]

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    async def session(self) -> AsyncIterator[AsyncSession]:
        """The FastAPI dependency: one session per request.

        Commits after the endpoint returns (before the response is sent when used with
        ``scope="function"``, as `Session` and `depends` do), rolls back on any
        exception, always closes. Database errors are raised as `Conflict` or
        `ServiceUnavailable`, chained to the original.

        The session must not be used after the response (e.g. in a background task):
        use `session_scope` there.
        """
        async with self.session_scope() as session:
            yield session

    @asynccontextmanager
    async def session_scope(self) -> AsyncIterator[AsyncSession]:
        """An async context manager with the same commit/rollback/close rules.

        For background tasks, scripts and websocket handlers.

        Example:
            ```python
            async def send_welcome(user_id: int) -> None:
                async with db.session_scope() as session:
                    session.add(Email(user_id=user_id))
            ```
        """
        session = self.sessionmaker()
        try:
            yield session
            await session.commit()
        except BaseException as error:
            # Shielded: a cancelled request must still give its connection back clean.
            with contextlib.suppress(Exception):
                await asyncio.shield(session.rollback())
            with contextlib.suppress(Exception):
                await asyncio.shield(session.close())
            _reraise_translated(error)
            raise
        await session.close()

    async def create_all(self, metadata: MetaData) -> None:
        """Create the tables of ``metadata`` that do not exist yet (for demos and tests)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

    async def drop_all(self, metadata: MetaData) -> None:
        """Drop the tables of ``metadata`` (for tests)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)

    async def ping(self, *, timeout: float = 5.0) -> bool:
        """True if the database answers ``SELECT 1`` within ``timeout`` seconds.

        Example:
            ```python
            @app.get("/health")
            async def health() -> dict[str, bool]:
                return {"database": await db.ping()}
            ```
        """
        try:
            await asyncio.wait_for(self._select_one(), timeout)
        except Exception:
            logger.warning("Database ping failed", exc_info=True)
            return False
        return True

    async def _select_one(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def connect(self) -> None:
        """Check that the database answers; raise `ServiceUnavailable` if it does not."""
        try:
            await self._select_one()
        except Exception as error:
            _reraise_translated(error)
            raise

    async def dispose(self) -> None:
        """Close every pooled connection (at shutdown)."""
        await self.engine.dispose()

    @asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """A lifespan that disposes the engine at shutdown.

        Pass it as ``FastAPI(lifespan=db.lifespan)``, or compose it with your own:

        Example:
            ```python
            @asynccontextmanager
            async def lifespan(app: FastAPI) -> AsyncIterator[None]:
                async with db.lifespan(app):
                    await db.create_all(Base.metadata)
                    yield
            ```
        """
        try:
            yield
        finally:
            await self.dispose()


class SyncDatabase:
    """The same as `Database`, for sync code and sync (``def``) endpoints.

    Args:
        url: A SQLAlchemy URL with a sync driver: ``sqlite:///./app.db`` (default),
            ``postgresql+psycopg://user:pass@host/db``.
        echo: Log SQL statements.
        sqlite_wal: On SQLite files, switch to WAL journaling.
        **engine_kwargs: Passed to ``create_engine``.

    Raises:
        ValueError: If the URL cannot be parsed or names an unknown database.
        MissingDependencyError: If the driver's extra is not installed.

    Example:
        ```python
        db = SyncDatabase("sqlite:///./app.db")

        @app.get("/items/{item_id}")
        def read_item(item_id: int, session: db.Session) -> ItemOut: ...
        ```
    """

    def __init__(
        self,
        url: str | URL = "sqlite:///./app.db",
        *,
        echo: bool = False,
        sqlite_wal: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        sqlalchemy = require("sqlalchemy", "sqlalchemy")
        self.url = _parse_url(url)
        _sqlite_options(self.url, engine_kwargs, sync=True)
        try:
            engine: Engine = sqlalchemy.create_engine(self.url, echo=echo, **engine_kwargs)
        except exc.NoSuchModuleError:
            raise ValueError(
                f"Unknown database URL scheme {self.url.drivername!r}; use e.g. "
                "'sqlite://' or 'postgresql+psycopg://'."
            ) from None
        except ImportError as error:
            raise _missing_driver(error, self.url) from error
        if engine.dialect.is_async:
            raise ValueError(
                f"{self.url.drivername!r} is an async driver; use Database, or a sync URL "
                "such as 'sqlite://' or 'postgresql+psycopg://'."
            )
        self.engine = engine
        _install_sqlite_pragmas(engine, self.url, wal=sqlite_wal)
        self.sessionmaker: sessionmaker[SyncSession] = sessionmaker(engine, expire_on_commit=False)
        #: ``Depends(db.session, scope="function")``: commit before the response.
        self.depends = Depends(self.session, scope="function")
        #: ``Annotated[Session, Depends(db.session, scope="function")]``.
        self.Session: Any = Annotated[SyncSession, self.depends]

    def __repr__(self) -> str:
        return f"SyncDatabase({self.url.render_as_string(hide_password=True)!r})"

    def session(self) -> Iterator[SyncSession]:
        """The FastAPI dependency (sync): see `Database.session`."""
        with self.session_scope() as session:
            yield session

    @contextmanager
    def session_scope(self) -> Iterator[SyncSession]:
        """A context manager with the commit/rollback/close rules of `Database.session`."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException as error:
            with contextlib.suppress(Exception):
                session.rollback()
            _reraise_translated(error)
            raise
        finally:
            with contextlib.suppress(Exception):
                session.close()

    def create_all(self, metadata: MetaData) -> None:
        """Create the tables of ``metadata`` that do not exist yet."""
        metadata.create_all(self.engine)

    def drop_all(self, metadata: MetaData) -> None:
        """Drop the tables of ``metadata``."""
        metadata.drop_all(self.engine)

    def ping(self) -> bool:
        """True if the database answers ``SELECT 1``."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            logger.warning("Database ping failed", exc_info=True)
            return False
        return True

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


# --- pagination of SQLAlchemy queries ------------------------------------------------------

_KEY_LABEL = "_fastkit_key_{}"
# What binding an out-of-range cursor value raises, depending on the driver.
_CURSOR_VALUE_ERRORS = (exc.DataError, exc.StatementError, OverflowError, UnicodeEncodeError)
# Parametrized once: subscripting a generic model on every page costs tens of microseconds.
_PAGE = Page[Any]
_LIMIT_OFFSET_PAGE = LimitOffsetPage[Any]
_CURSOR_PAGE = CursorPage[Any]


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


def _with_tie_breaker(
    stmt: Select[Any], descriptions: Sequence[Mapping[str, Any]]
) -> tuple[Select[Any], list[tuple[Any, bool]]]:
    """Make the order total: append the entity's primary key when it is not sorted by.

    For ``select(Item)`` always (no ORDER BY pages by the key). For columns that all belong
    to one entity (``select(Item.name, Item.score).order_by(Item.score)``) unless the
    statement has GROUP BY or DISTINCT (its rows are then not the entity's), and, for
    several columns, only with an ORDER BY: the key is sorted by and read as a hidden cursor
    key, not added to the items.
    """
    keys = _order_keys(stmt)
    entities = {d.get("entity") for d in descriptions}
    entity = entities.pop() if len(entities) == 1 else None
    whole = len(descriptions) == 1 and descriptions[0].get("expr") is entity
    grouped = bool(getattr(stmt, "_group_by_clauses", ())) or bool(
        getattr(stmt, "_distinct", False)
    )
    if not whole and (grouped or (len(descriptions) > 1 and not keys)):
        entity = None
    mapper = getattr(entity, "__mapper__", None)
    if mapper is not None:
        sorted_by = {(getattr(c, "table", None), _key_name(c)) for c, _ in keys}
        extra = [c for c in mapper.primary_key if (c.table, c.key) not in sorted_by]
        if extra:
            stmt = stmt.order_by(*extra)
            # By the mapped attribute: its name may differ from the column's.
            keys += [(getattr(entity, mapper.get_property_by_column(c).key), False) for c in extra]
    if not keys:
        raise ValueError(
            "Cursor pagination needs an ORDER BY ending in a unique column, "
            "e.g. select(Item).order_by(Item.created_at, Item.id)."
        )
    return stmt, keys


def _keyset_condition(keys: list[tuple[Any, bool]], values: list[Any]) -> Any:
    """Rows strictly after ``values`` in the order ``keys`` (descending flags included)."""
    directions = {descending for _, descending in keys}
    if len(directions) == 1 and len(keys) > 1:
        # One direction: a row-value comparison, which indexes on (k1, k2...) serve.
        left = tuple_(*(c for c, _ in keys))
        # Bound with the column's type, so custom types convert the value as they store it.
        right = tuple_(*(literal(v, type_=c.type) for (c, _), v in zip(keys, values, strict=True)))
        return left < right if directions == {True} else left > right
    # Bound with the column's type here too: a bare True/False cannot take < or >.
    bound = [literal(v, type_=c.type) for (c, _), v in zip(keys, values, strict=True)]
    clauses = []
    for i, (column, descending) in enumerate(keys):
        equal = [keys[j][0] == bound[j] for j in range(i)]
        clauses.append(and_(*equal, column < bound[i] if descending else column > bound[i]))
    return or_(*clauses)


class _Plan:
    """What to execute for one page, and how to turn the rows into the page model."""

    def __init__(self, stmt: Select[Any], params: Any, include_total: bool) -> None:
        self.params = params
        descriptions = stmt.column_descriptions
        self.single = len(descriptions) == 1
        self.width = len(descriptions)
        self.count: Select[Any] | None = None
        self.keys: list[tuple[Any, bool]] = []
        self.values: list[Any] | None = None
        self.backward = False
        if isinstance(params, CursorParams):
            self._plan_cursor(stmt, params, descriptions)
            return
        if isinstance(params, PageParams):
            offset, limit = params.offset, params.page_size
        elif isinstance(params, LimitOffsetParams):
            offset, limit = params.offset, params.limit
        else:
            raise TypeError("params must be PageParams, LimitOffsetParams or CursorParams.")
        if include_total:
            self.count = select(func.count()).select_from(stmt.order_by(None).subquery())
        self.query = stmt.limit(limit).offset(offset)

    def _plan_cursor(
        self, stmt: Select[Any], params: CursorParams, descriptions: Sequence[Mapping[str, Any]]
    ) -> None:
        stmt, self.keys = _with_tie_breaker(stmt, descriptions)
        for column, _ in self.keys:
            # A keyset cannot compare NULLs: rows would be skipped without a word.
            if getattr(getattr(column, "expression", column), "nullable", False) is True:
                raise ValueError(
                    f"Cursor pagination needs NOT NULL sort keys; {_key_name(column)!r} is "
                    "nullable. Sort by non-nullable columns."
                )
        self.signature = ",".join(("-" if d else "") + _key_name(c) for c, d in self.keys)
        self.secret = type(params).cursor_secret
        if params.cursor is not None:
            self.values, self.backward = decode_cursor(
                params.cursor,
                self.signature,
                secret=self.secret,
                types=[_python_type(c) for c, _ in self.keys],
            )
        # Walking backward: the same query in the opposite order, reversed afterwards.
        effective = [(c, d != self.backward) for c, d in self.keys]
        query = stmt.order_by(None).order_by(*(c.desc() if d else c.asc() for c, d in effective))
        if self.values is not None:
            query = query.where(_keyset_condition(effective, self.values))
        labels = [c.label(_KEY_LABEL.format(i)) for i, (c, _) in enumerate(self.keys)]
        self.query = query.add_columns(*labels).limit(params.size + 1)

    def bad_cursor_value(self, error: BaseException) -> None:
        """A cursor value the database cannot bind (too large for the column...): 400."""
        if self.values is not None:
            raise InvalidCursor("Invalid cursor: a value is out of range.") from error

    def _item(self, row: Row[Any]) -> Any:
        if self.single:
            return row[0]
        return dict(zip(row._fields[: self.width], row[: self.width], strict=True))

    def page(
        self, rows: Sequence[Row[Any]], total: int | None, transformer: Callable[..., Any] | None
    ) -> Any:
        params = self.params
        if not isinstance(params, CursorParams):
            items: Sequence[Any] = [self._item(r) for r in rows]
            if transformer is not None:
                items = transformer(items)
            if isinstance(params, PageParams):
                return _PAGE.create(items, total, params)
            return _LIMIT_OFFSET_PAGE.create(items, total, params)

        rows = list(rows)
        more = len(rows) > params.size
        rows = rows[: params.size]
        if self.backward:
            rows.reverse()
        n = len(self.keys)
        first = list(rows[0][-n:]) if rows else self.values
        last = list(rows[-1][-n:]) if rows else self.values

        def cursor(values: list[Any] | None, backward: bool) -> str | None:
            if values is None:
                return None
            if any(v is None for v in values):
                raise ValueError(
                    "Cursor pagination needs NOT NULL sort keys; a row has NULL in "
                    f"{self.signature!r}. Sort by non-nullable columns."
                )
            return encode_cursor(values, self.signature, backward=backward, secret=self.secret)

        if self.backward:
            previous_cursor = cursor(first, True) if more else None
            next_cursor = cursor(last, False)
        else:
            next_cursor = cursor(last, False) if more else None
            previous_cursor = cursor(first, True) if self.values is not None else None
        items = [self._item(r) for r in rows]
        if transformer is not None:
            items = list(transformer(items))
        return _CURSOR_PAGE(
            items=items,
            next_cursor=next_cursor,
            previous_cursor=previous_cursor,
            size=params.size,
        )


async def apaginate(
    session: AsyncSession,
    stmt: Select[Any],
    params: PageParams | LimitOffsetParams | CursorParams,
    *,
    include_total: bool = True,
    transformer: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
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
        async def items(session: db.Session, params: Annotated[CursorParams, Depends()]
                        ) -> CursorPage[ItemOut]:
            stmt = select(Item).order_by(Item.created_at.desc())
            return await apaginate(session, stmt, params)
        ```
    """
    plan = _Plan(stmt, params, include_total)
    total = None
    if plan.count is not None:
        total = int(await session.scalar(plan.count) or 0)
    try:
        rows = (await session.execute(plan.query)).all()
    except _CURSOR_VALUE_ERRORS as error:
        plan.bad_cursor_value(error)
        raise
    return plan.page(rows, total, transformer)


def paginate(
    session: SyncSession,
    stmt: Select[Any],
    params: PageParams | LimitOffsetParams | CursorParams,
    *,
    include_total: bool = True,
    transformer: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
) -> Any:
    """The sync twin of `apaginate`, for `SyncDatabase` sessions."""
    plan = _Plan(stmt, params, include_total)
    total = None
    if plan.count is not None:
        total = int(session.scalar(plan.count) or 0)
    try:
        rows = session.execute(plan.query).all()
    except _CURSOR_VALUE_ERRORS as error:
        plan.bad_cursor_value(error)
        raise
    return plan.page(rows, total, transformer)
