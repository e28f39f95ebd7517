"""Test helpers for apps built with fastkit, and a pytest plugin that wraps them.

Helpers (plain functions, usable with any test runner):

- `app_client(app)`: a ``TestClient`` with the app's lifespan run (startup and shutdown);
- `auth_headers(auth, subject, scopes)`: ``{"Authorization": "Bearer ..."}`` for a user;
- `override_user(app, auth, user)`: every ``auth.current_user`` / ``optional_user``
  dependency of ``app`` answers ``user`` without a token, until the block ends;
- `rollback_database(db)`: every session of ``db`` (requests included) runs inside one
  transaction that is rolled back at the end: each test starts from the same data, on
  SQLite and on PostgreSQL, and commits in the app still work (they release SAVEPOINTs).

The pytest plugin (``pytest -p fastkit.testing``, or ``pytest_plugins =
["fastkit.testing"]`` in a ``conftest.py``) adds fixtures built on two fixtures you
define: ``app`` (your FastAPI app) and, for the database, ``database`` (your
`fastkit.db.Database`):

- ``client``: `app_client(app)`;
- ``db_session``: `rollback_database(database)` around the test, on the client's event
  loop, yielding a session for arranging data (``client.portal.call(session.flush)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from sqlalchemy.ext.asyncio import AsyncSession

    from fastkit.auth.dependencies import JWTAuth
    from fastkit.db import Database

__all__ = ["app_client", "auth_headers", "override_user", "rollback_database"]


@contextlib.contextmanager
def app_client(app: FastAPI, **options: Any) -> Iterator[TestClient]:
    """A ``TestClient`` for ``app`` with its lifespan run around the block.

    ``options`` go to ``TestClient`` (``raise_server_exceptions=False`` to see 500s as a
    client does, ``base_url=``...).

    Example:
        ```python
        with app_client(app) as client:
            assert client.get("/health").status_code == 200
        ```
    """
    from fastapi.testclient import TestClient

    with TestClient(app, **options) as client:
        yield client


def auth_headers(auth: JWTAuth[Any], subject: str, scopes: Iterable[str] = ()) -> dict[str, str]:
    """``{"Authorization": "Bearer <access token>"}`` for ``subject`` with ``scopes``.

    The token is a real one from ``auth.tokens``: the whole check runs (signature,
    expiry, revocation, the user loader), as for a client that logged in.

    Example:
        ```python
        response = client.get("/todos", headers=auth_headers(auth, "1", ["todos:read"]))
        ```
    """
    token = auth.tokens.create_access_token(subject, scopes=list(scopes))
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def override_user(app: FastAPI, auth: JWTAuth[Any], user: Any) -> Iterator[None]:
    """Within the block, ``auth.current_user`` and ``auth.optional_user`` give ``user``.

    No token is needed or read. Scope checks built with ``auth.require_scopes`` still read
    the token: use `auth_headers` for those routes. The app's other overrides are kept,
    and restored as they were when the block ends.

    Example:
        ```python
        with override_user(app, auth, User(id=1, name="ann")):
            assert client.get("/me").json()["data"]["name"] == "ann"
        ```
    """
    overrides = app.dependency_overrides
    saved = dict(overrides)

    async def the_user() -> Any:
        return user

    overrides[auth.current_user] = the_user
    overrides[auth.optional_user] = the_user
    try:
        yield
    finally:
        overrides.clear()
        overrides.update(saved)


@contextlib.asynccontextmanager
async def rollback_database(db: Database) -> AsyncIterator[AsyncSession]:
    """Run every session of ``db`` inside one transaction, rolled back when the block ends.

    The block gets a session to arrange data with. Sessions opened meanwhile (by
    ``db.session`` in requests, by ``db.session_scope``) share the same connection: their
    commits release SAVEPOINTs inside the outer transaction, and their rollbacks undo only
    their own work. One connection: requests must not run concurrently (TestClient's are
    sequential). On SQLite, the connection is switched to explicit transactions for the
    block, since the driver's own handling would commit at the first SAVEPOINT.

    Enter it on the event loop that serves the requests: in an async test with
    ``httpx.AsyncClient(transport=ASGITransport(app))``, directly; with ``TestClient``,
    through ``client.portal.wrap_async_context_manager(...)`` (what the ``db_session``
    fixture does).

    Example:
        ```python
        async with rollback_database(db) as session:
            session.add(User(name="ann"))
            await session.flush()
            ...  # requests see ann; after the block, nobody does
        ```
    """
    from sqlalchemy.ext.asyncio import async_sessionmaker

    sqlite = db.url.get_backend_name() == "sqlite"
    connection = await db.engine.connect()
    restore: Any = None
    try:
        if sqlite:  # no implicit BEGIN/COMMIT by the driver
            restore = await connection.run_sync(_swap_isolation_level, None)
        transaction = await connection.begin()
        if sqlite:
            await connection.exec_driver_sql("BEGIN")
        saved = db.sessionmaker
        db.sessionmaker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            async with db.sessionmaker() as session:
                yield session
        finally:
            db.sessionmaker = saved
            await transaction.rollback()
    finally:
        if sqlite:
            await connection.run_sync(_swap_isolation_level, restore)
        await connection.close()


def _swap_isolation_level(connection: Any, level: str | None) -> str | None:
    """Set the SQLite driver connection's ``isolation_level``; return the one it had."""
    raw = connection.connection.dbapi_connection
    previous: str | None = raw.isolation_level
    raw.isolation_level = level
    return previous


# --- the pytest plugin --------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above need no pytest
    pass
else:

    @pytest.fixture
    def client(app: FastAPI) -> Iterator[TestClient]:
        """`app_client` for your ``app`` fixture: lifespan run, exceptions raised."""
        with app_client(app) as test_client:
            yield test_client

    @pytest.fixture
    def db_session(client: TestClient, database: Database) -> Iterator[AsyncSession]:
        """`rollback_database` for your ``database`` fixture, around one test.

        Entered on the client's event loop (TestClient runs the app on a loop of its
        own, and a database connection belongs to one loop). Call the session's
        coroutines through the client: ``client.portal.call(session.flush)``.
        """
        portal = client.portal
        assert portal is not None  # inside ``with TestClient``: the client fixture
        with portal.wrap_async_context_manager(rollback_database(database)) as session:
            yield session
