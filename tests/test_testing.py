"""fastkit.testing: the helpers, and the pytest plugin as a user's project runs it.

The rollback tests run on SQLite always and on PostgreSQL when FASTKIT_TEST_POSTGRES_URL
is set: what a test writes (through requests that commit) is gone afterwards, and a
conflict inside a request undoes only that request.

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from fastkit import setup
from fastkit.auth import JWTAuth, TokenClaims, TokenService
from fastkit.db import Database
from fastkit.testing import app_client, auth_headers, override_user, rollback_database
from tests.db_support import Base, Child, Parent, Target, target  # noqa: F401 (fixture)

SECRET = "fastkit-testing-tests-secret-0123456789"
SNIPPETS = Path(__file__).resolve().parents[1] / "docs" / "snippets"


@dataclass
class User:
    id: str
    name: str


USERS = {"1": User("1", "ann")}


def build(database: Database | None = None) -> tuple[FastAPI, JWTAuth[User]]:
    async def load_user(claims: TokenClaims) -> User | None:
        return USERS.get(claims.sub)

    auth: JWTAuth[User] = JWTAuth(TokenService(secret=SECRET), user_loader=load_user)
    app = FastAPI()
    setup(app, access_log=False)
    Me = Annotated[User, Depends(auth.current_user)]
    Maybe = Annotated[User | None, Depends(auth.optional_user)]

    @app.get("/me")
    async def me(user: Me) -> dict[str, str]:
        return {"name": user.name}

    @app.get("/maybe")
    async def maybe(user: Maybe) -> dict[str, str | None]:
        return {"name": None if user is None else user.name}

    @app.get("/scoped", dependencies=[auth.require_scopes("items:read")])
    async def scoped() -> dict[str, bool]:
        return {"ok": True}

    if database is not None:
        Session = database.Session

        @app.post("/children/{name}", status_code=201)
        async def add_child(name: str, session: Session) -> dict[str, str]:  # type: ignore[valid-type]
            session.add(Child(parent_id=1, name=name))
            return {"name": name}

        @app.get("/children")
        async def children(session: Session) -> list[str]:  # type: ignore[valid-type]
            rows = await session.scalars(select(Child.name).order_by(Child.name))
            return list(rows)

    return app, auth


# --- auth_headers and override_user ---------------------------------------------------------


def test_auth_headers_make_a_real_token() -> None:
    app, auth = build()
    with app_client(app, raise_server_exceptions=False) as client:
        assert client.get("/me", headers=auth_headers(auth, "1")).json() == {"name": "ann"}
        assert client.get("/me").status_code == 401
        assert client.get("/me", headers=auth_headers(auth, "999")).status_code == 401
        assert client.get("/scoped", headers=auth_headers(auth, "1")).status_code == 403
        scoped = client.get("/scoped", headers=auth_headers(auth, "1", ["items:read"]))
        assert scoped.json() == {"ok": True}


def test_override_user_needs_no_token_and_ends_with_the_block() -> None:
    app, auth = build()
    sentinel = object()
    app.dependency_overrides[sentinel] = lambda: None  # type: ignore[index]
    with app_client(app) as client:
        with override_user(app, auth, User("7", "zed")):
            assert client.get("/me").json() == {"name": "zed"}
            assert client.get("/maybe").json() == {"name": "zed"}
        assert client.get("/me").status_code == 401
        assert client.get("/maybe").json() == {"name": None}
    assert list(app.dependency_overrides) == [sentinel]  # the app's own are kept


# --- rollback_database ------------------------------------------------------------------------


@pytest.fixture
def database(target: Target) -> Iterator[Database]:  # noqa: F811
    # No pool: the set-up, each TestClient and the checks run on event loops of their own,
    # and a pooled connection belongs to the loop that opened it.
    db = Database(target.async_url, poolclass=NullPool, **target.async_kwargs)

    async def prepare() -> None:
        await db.create_all(Base.metadata)
        async with db.session_scope() as session:
            session.add(Parent(id=1))

    asyncio.run(prepare())
    yield db
    asyncio.run(db.dispose())


def count_children(database: Database) -> int:
    async def count() -> int:
        async with database.session_scope() as session:
            return int(await session.scalar(select(func.count()).select_from(Child)) or 0)

    return asyncio.run(count())


def test_requests_that_commit_are_rolled_back_afterwards(database: Database) -> None:
    app, _ = build(database)
    with app_client(app) as client:
        assert client.portal is not None
        with client.portal.wrap_async_context_manager(rollback_database(database)) as session:
            # Data arranged by the test, seen by the requests.
            session.add(Child(parent_id=1, name="arranged"))
            client.portal.call(session.flush)
            assert client.post("/children/ann").status_code == 201
            assert client.post("/children/bob").status_code == 201
            assert client.get("/children").json() == ["ann", "arranged", "bob"]
            # A conflict in a request (unique name) undoes that request only.
            conflict = client.post("/children/ann")
            assert conflict.status_code == 409
            assert client.get("/children").json() == ["ann", "arranged", "bob"]
            assert client.post("/children/cat").status_code == 201
    assert count_children(database) == 0  # nothing reached the database


def test_without_it_the_requests_commit(database: Database) -> None:
    """The control: the same requests outside the block stay in the database."""
    app, _ = build(database)
    with app_client(app) as client:
        assert client.post("/children/ann").status_code == 201
    assert count_children(database) == 1


# --- the pytest plugin, in a project of its own -----------------------------------------------


def test_the_plugin_fixtures_in_a_users_project(tmp_path: Path) -> None:
    """docs/testing.md's conftest.py and test file, run as a project of their own: it opts
    in with ``pytest_plugins``, defines ``app`` and ``database``, and gets ``client`` and
    ``db_session``; each test starts from an empty table."""
    shutil.copy(SNIPPETS / "testing_conftest.py", tmp_path / "conftest.py")
    shutil.copy(SNIPPETS / "testing_test_notes.py", tmp_path / "test_notes.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-W", "error"]
    # As this project's own settings: on Python 3.10 (no httpx2) TestClient runs on httpx.
    command += ["-W", "ignore:Using `httpx` with `starlette.testclient` is deprecated"]
    done = subprocess.run(
        [*command, "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert (tmp_path / "test.db").exists()  # a real database, emptied by the rollbacks
