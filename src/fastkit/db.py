"""SQLAlchemy sessions you can trust: commit before respond, errors mapped, nothing leaked.

Needs the ``sqlalchemy`` extra (``pip install "fastkit-fastapi[sqlalchemy]"``); PostgreSQL drivers
come with ``fastkit-fastapi[postgres]``.

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
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends

from fastkit._compat import MissingDependencyError, require
from fastkit.errors import BadRequest, Conflict, ServiceUnavailable
from fastkit.metrics import record

require("sqlalchemy", "sqlalchemy")

from sqlalchemy import event, exc, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.engine.url import URL  # noqa: E402
from sqlalchemy.orm import Session as SyncSession  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402
from sqlalchemy.pool import StaticPool  # noqa: E402

# Pagination of SQLAlchemy queries lives in fastkit.pagination.sql; exported here too.
from fastkit.pagination.sql import apaginate, paginate  # noqa: E402

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
# create_all: tries in all when other processes create the same tables at the same moment.
_CREATE_ATTEMPTS = 3

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


# What a CREATE answers when another process created the object since the check: unique
# violation (PostgreSQL's catalogs), duplicate table, duplicate object.
_CREATED_MEANWHILE = {"23505", "42P07", "42710"}


def _check_again(error: exc.DBAPIError, attempt: int) -> bool:
    """Whether ``create_all``'s ``attempt`` (from 0) failed for a table another process
    created meanwhile, and may run once more (it then finds the table made)."""
    if attempt == _CREATE_ATTEMPTS - 1 or not _created_meanwhile(error):
        return False
    logger.debug("create_all raced another process; checking again", exc_info=True)
    return True


def _created_meanwhile(error: exc.DBAPIError) -> bool:
    """Whether ``create_all`` failed because the table appeared after its check (run it
    again), rather than for a reason a retry cannot fix (no connection, no privilege)."""
    orig = error.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _CREATED_MEANWHILE or "already exists" in str(orig).lower()


def _reraise_translated(error: BaseException) -> None:
    mapped = translate_error(error)
    if mapped is error:
        return
    record("db_error", str(mapped.status_code))  # type: ignore[attr-defined]
    if isinstance(mapped, Conflict):
        # Routine (a username taken twice): one line, no traceback and no database detail
        # (the detail names the values: "Key (username)=(ann) already exists").
        logger.info("Database conflict raised as Conflict (409): %s", type(error).__name__)
        raise mapped from error
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
            ``pool_pre_ping``, ``connect_args``...). ``hide_parameters`` is True unless
            given: SQL parameters (password hashes, emails) stay out of logs and error
            messages; pass ``hide_parameters=False`` while debugging.

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
        engine_kwargs.setdefault("hide_parameters", True)
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
        """Create the tables of ``metadata`` that do not exist yet (for demos and tests).

        Several workers may start at once: when another one creates a table between this
        one's check and its ``CREATE TABLE`` (SQLite's "table already exists", PostgreSQL's
        unique violation in its catalog), the step is run again, and finds the table made.
        """
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                async with self.engine.begin() as connection:
                    await connection.run_sync(metadata.create_all)
            except exc.DBAPIError as error:
                if not _check_again(error, attempt):
                    raise
            else:
                return

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
        **engine_kwargs: Passed to ``create_engine``; ``hide_parameters`` is True unless
            given, as for `Database`.

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
        engine_kwargs.setdefault("hide_parameters", True)
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
        """Create the tables of ``metadata`` that do not exist yet; a race with another
        process creating them is run again, as `Database.create_all` does."""
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                metadata.create_all(self.engine)
            except exc.DBAPIError as error:
                if not _check_again(error, attempt):
                    raise
            else:
                return

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
