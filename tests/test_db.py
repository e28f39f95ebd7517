"""fastkit.db against real SQLite and (when configured) real PostgreSQL.

No ``from __future__ import annotations`` here: the endpoints are built inside functions,
and ``session: db.Session`` must be evaluated where the local ``db`` is visible.
"""

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession

from fastkit import (
    BadRequest,
    Conflict,
    MissingDependencyError,
    ServiceUnavailable,
    install_exception_handlers,
)
from fastkit.db import Database, SyncDatabase, translate_error
from tests.db_support import Base, Child, Parent, Target, target  # noqa: F401

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]


class ChildIn(BaseModel):
    parent_id: int = 1
    name: str
    fail: str = "none"  # what the endpoint does after its write


def _fail_after_write(mode: str) -> None:
    if mode == "app-error":
        raise BadRequest("Changed my mind")
    if mode == "crash":
        raise RuntimeError("boom after write")
    if mode == "http":
        raise HTTPException(418)


# --- apps --------------------------------------------------------------------------------


def async_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    install_exception_handlers(app)

    @app.post("/children", status_code=201)
    async def create_child(body: ChildIn, session: db.Session) -> dict[str, str]:
        session.add(Child(parent_id=body.parent_id, name=body.name))
        if body.fail != "commit-only":
            await session.flush()  # a unique violation surfaces here; the deferred FK at commit
        _fail_after_write(body.fail)
        return {"name": body.name}

    @app.get("/children/{child_id}")
    async def read_child(child_id: int, session: db.Session) -> dict[str, str | None]:
        child = await session.get(Child, child_id)
        return {"name": child.name if child else None}

    @app.get("/children/by-name/{name}")
    async def read_child_by_text_id(name: str, session: db.Session) -> dict[str, int]:
        # A text value compared with an integer column: PostgreSQL refuses it (DataError).
        found = await session.execute(text("SELECT id FROM child WHERE id = :v"), {"v": name})
        return {"rows": len(found.all())}

    @app.post("/children/defer-pragma", status_code=201)
    async def create_child_pragma(body: ChildIn, session: db.Session) -> dict[str, str]:
        await session.execute(text("PRAGMA defer_foreign_keys=ON"))
        session.add(Child(parent_id=body.parent_id, name=body.name))
        await session.flush()
        return {"name": body.name}

    @app.post("/children/background", status_code=202)
    async def create_later(body: ChildIn, tasks: BackgroundTasks) -> dict[str, str]:
        async def write() -> None:
            # The request's session is closed once the response is sent: open a new scope.
            async with db.session_scope() as session:
                session.add(Child(parent_id=body.parent_id, name=body.name))

        tasks.add_task(write)
        return {"queued": body.name}

    @app.get("/session-id")
    async def session_id(session: db.Session) -> dict[str, int]:
        await session.execute(text("SELECT 1"))
        await asyncio.sleep(0.05)  # overlap with the other requests
        return {"id": id(session)}

    @app.post("/terminate")
    async def terminate(session: db.Session) -> None:
        await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"database": await db.ping()}

    return app


def sync_app(db: SyncDatabase) -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)

    @app.post("/children", status_code=201)
    def create_child(body: ChildIn, session: db.Session) -> dict[str, str]:
        session.add(Child(parent_id=body.parent_id, name=body.name))
        if body.fail != "commit-only":
            session.flush()
        _fail_after_write(body.fail)
        return {"name": body.name}

    @app.get("/children/{child_id}")
    def read_child(child_id: int, session: db.Session) -> dict[str, str | None]:
        child = session.get(Child, child_id)
        return {"name": child.name if child else None}

    @app.get("/session-id")
    def session_id(session: db.Session) -> dict[str, int]:
        session.execute(text("SELECT 1"))
        import time

        time.sleep(0.05)
        return {"id": id(session)}

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"database": db.ping()}

    return app


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def adb(target: Target) -> Database:  # noqa: F811
    return Database(target.async_url, **target.async_kwargs)


@pytest.fixture
def sdb(target: Target) -> Iterator[SyncDatabase]:  # noqa: F811
    db = SyncDatabase(target.sync_url, **target.sync_kwargs)
    db.create_all(Base.metadata)
    with db.session_scope() as session:
        session.add(Parent(id=1))
    yield db
    db.dispose()


@pytest.fixture
def aclient(adb: Database, sdb: SyncDatabase) -> Iterator[TestClient]:
    # sdb created the tables and parent 1 on the same database; one portal (one event
    # loop) for the whole test, as asyncpg connections belong to the loop that made them.
    with TestClient(async_app(adb), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def sclient(sdb: SyncDatabase) -> Iterator[TestClient]:
    with TestClient(sync_app(sdb), raise_server_exceptions=False) as client:
        yield client


def names(sdb: SyncDatabase) -> list[str]:
    with sdb.session_scope() as session:
        return list(session.scalars(select(Child.name).order_by(Child.name)))


Clients = Callable[[str], TestClient]


@pytest.fixture(params=["async", "sync"])
def client(request: pytest.FixtureRequest, target: Target) -> TestClient:  # noqa: F811
    """Both variants: the async Database with async endpoints, SyncDatabase with def ones."""
    fixture = "aclient" if request.param == "async" else "sclient"
    client: TestClient = request.getfixturevalue(fixture)
    return client


CONFLICT = {"code": 409, "message": "The request conflicts with existing data", "data": None}
UNAVAILABLE = {"code": 503, "message": "Database unavailable", "data": None}


# --- commit before respond ---------------------------------------------------------------


def test_write_is_committed_before_201(client: TestClient, sdb: SyncDatabase) -> None:
    response = client.post("/children", json={"name": "ann"})
    assert response.status_code == 201
    assert names(sdb) == ["ann"]


def test_failing_commit_answers_409_and_keeps_nothing(
    client: TestClient, sdb: SyncDatabase
) -> None:
    # Parent 99 does not exist; the FK is deferred, so only COMMIT notices. A session
    # committed after the response would have answered 201 here and lost the row silently.
    response = client.post("/children", json={"parent_id": 99, "name": "orphan"})
    assert response.status_code == 409
    assert response.json() == CONFLICT
    assert names(sdb) == []


def test_failing_commit_without_flush(client: TestClient, sdb: SyncDatabase) -> None:
    response = client.post(
        "/children", json={"parent_id": 99, "name": "orphan", "fail": "commit-only"}
    )
    assert (response.status_code, response.json()) == (409, CONFLICT)
    assert names(sdb) == []


def test_sqlite_defer_foreign_keys_pragma(
    aclient: TestClient,
    sdb: SyncDatabase,
    target: Target,  # noqa: F811
) -> None:
    if target.kind != "sqlite":
        pytest.skip("PRAGMA defer_foreign_keys is SQLite's")
    response = aclient.post("/children/defer-pragma", json={"parent_id": 42, "name": "late"})
    assert (response.status_code, response.json()) == (409, CONFLICT)
    assert names(sdb) == []


@pytest.mark.parametrize("child_id", [2**63, -(2**63) - 1, 10**30])
def test_an_id_too_large_for_the_database_is_400_not_500(client: TestClient, child_id: int) -> None:
    response = client.get(f"/children/{child_id}")
    assert response.status_code == 400, response.text
    assert response.json() == {
        "code": 400,
        "message": "A value is out of range or invalid for the database",
        "data": None,
    }
    assert client.get("/children/12345").json() == {"name": None}  # in range: found nothing


def test_text_the_database_cannot_read_as_its_type_is_400(
    aclient: TestClient,
    target: Target,  # noqa: F811
) -> None:
    response = aclient.get("/children/by-name/not-a-number")
    if target.kind == "sqlite":  # SQLite compares across types: no error, no row
        assert response.json() == {"rows": 0}
    else:
        assert response.status_code == 400, response.text
        assert "not-a-number" not in response.text


def test_unique_violation_is_409_naming_no_sql(client: TestClient, sdb: SyncDatabase) -> None:
    assert client.post("/children", json={"name": "dup"}).status_code == 201
    response = client.post("/children", json={"name": "dup"})
    assert (response.status_code, response.json()) == (409, CONFLICT)
    for leak in ("INSERT", "child", "UNIQUE", "unique", "dup", "SQL"):
        assert leak not in response.text
    assert names(sdb) == ["dup"]


@pytest.mark.parametrize(
    ("mode", "status"),
    [("app-error", 400), ("crash", 500), ("http", 418)],
    ids=["app-error", "unhandled", "http-exception"],
)
def test_exception_after_write_rolls_back(
    client: TestClient, sdb: SyncDatabase, mode: str, status: int
) -> None:
    response = client.post("/children", json={"name": "ghost", "fail": mode})
    assert response.status_code == status
    assert names(sdb) == []


def test_a_conflict_is_chained_and_logged_as_one_info_line(
    adb: Database, sdb: SyncDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """A duplicate is routine: INFO, no traceback, and no database detail (it names the
    values); the original stays chained for whoever handles the Conflict."""

    async def duplicate() -> None:
        try:
            for _ in range(2):
                async with adb.session_scope() as session:
                    session.add(Child(parent_id=1, name="twice"))
        finally:
            await adb.dispose()  # close the pool on the loop that opened it

    with caplog.at_level(logging.DEBUG, logger="fastkit.db"), pytest.raises(Conflict) as info:
        asyncio.run(duplicate())
    assert type(info.value.__cause__).__name__ == "IntegrityError"
    [record] = [r for r in caplog.records if r.name == "fastkit.db"]
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage() == "Database conflict raised as Conflict (409): IntegrityError"
    assert names(sdb) == ["twice"]


def test_sql_parameters_stay_out_of_errors_and_logs(
    adb: Database, sdb: SyncDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """Engines hide parameters by default: a failing statement's error (what a traceback
    in the log shows) names the SQL but not the values bound to it."""
    secret = "argon2-hash-of-a-password"

    async def fail() -> str:
        try:
            async with adb.session_scope() as session:
                query = text("SELECT * FROM no_such_table WHERE x = :x")
                await session.execute(query, {"x": secret})
        except Exception as error:
            # SQLAlchemy's error (raised as is, or chained under a 503) names the SQL.
            found: BaseException | None = error
            while found is not None and not isinstance(found, StatementError):
                found = found.__cause__
            return str(found)
        finally:
            await adb.dispose()
        return ""

    assert adb.engine.sync_engine.hide_parameters
    assert sdb.engine.hide_parameters
    with caplog.at_level(logging.INFO):  # (aiosqlite's own DEBUG lines show parameters)
        message = asyncio.run(fail())
    assert "no_such_table" in message
    assert "hide_parameters=True" in message
    assert secret not in message
    assert secret not in caplog.text
    debugging = Database("sqlite+aiosqlite://", hide_parameters=False)
    assert debugging.engine.sync_engine.hide_parameters is False


# --- unavailable databases ---------------------------------------------------------------


def _unreachable(target: Target, tmp_path: Path) -> tuple[str, str, dict[str, Any]]:  # noqa: F811
    if target.kind == "sqlite":
        missing = tmp_path / "no" / "such" / "dir" / "x.db"
        return f"sqlite+aiosqlite:///{missing}", f"sqlite:///{missing}", {}
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    from sqlalchemy.engine import make_url

    url = make_url(target.async_url).set(port=1)
    sync = url.set(drivername="postgresql+psycopg")
    return (
        url.render_as_string(hide_password=False),
        sync.render_as_string(hide_password=False),
        {"connect_args": {"timeout": 5}},
    )


def test_unreachable_database_is_503(target: Target, tmp_path: Path) -> None:  # noqa: F811
    async_url, sync_url, kwargs = _unreachable(target, tmp_path)
    sync_kwargs = {"connect_args": {"connect_timeout": 5}} if kwargs else {}
    with TestClient(async_app(Database(async_url, **kwargs)), raise_server_exceptions=False) as c:
        response = c.post("/children", json={"name": "x"})
        assert (response.status_code, response.json()) == (503, UNAVAILABLE)
        assert c.get("/health").json() == {"database": False}
    with TestClient(
        sync_app(SyncDatabase(sync_url, **sync_kwargs)), raise_server_exceptions=False
    ) as c:
        response = c.post("/children", json={"name": "x"})
        assert (response.status_code, response.json()) == (503, UNAVAILABLE)
        assert c.get("/health").json() == {"database": False}


def test_dropped_connection_is_503(
    aclient: TestClient,
    adb: Database,
    target: Target,  # noqa: F811
) -> None:
    if target.kind != "postgres":
        pytest.skip("SQLite has no server connection to drop")
    response = aclient.post("/terminate")
    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    # The pool recovers: the next request gets a fresh connection.
    assert aclient.post("/children", json={"name": "after"}).status_code == 201
    assert adb.engine.pool.checkedout() == 0


def test_health_ping(client: TestClient) -> None:
    assert client.get("/health").json() == {"database": True}


# --- pool hygiene and concurrency --------------------------------------------------------

FAILURES = [
    {"name": "dup-0"},  # unique violation (after the first success)
    {"parent_id": 99, "name": "orphan"},  # deferred FK fails at commit
    {"name": "x", "fail": "app-error"},
    {"name": "y", "fail": "crash"},
    {"name": "z", "fail": "http"},
    {"nme": "typo"},  # 422 before the endpoint runs
]


def _mixed_requests(client: TestClient, total: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    created = 0
    for i in range(total):
        if i % 10 < 3:  # 30% fail, cycling through the kinds
            body: dict[str, Any] = FAILURES[i % len(FAILURES)]
        else:
            body = {"name": f"ok-{created}"}
            created += 1
        status = client.post("/children", json=body).status_code
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def test_no_pool_leak_after_1000_mixed_requests(
    aclient: TestClient, adb: Database, sdb: SyncDatabase
) -> None:
    assert aclient.post("/children", json={"name": "dup-0"}).status_code == 201
    statuses = _mixed_requests(aclient, 1000)
    assert set(statuses) == {201, 400, 409, 418, 422, 500}
    assert statuses[201] == 700
    assert adb.engine.pool.checkedout() == 0
    assert len(names(sdb)) == 701


def test_no_pool_leak_sync(sclient: TestClient, sdb: SyncDatabase) -> None:
    assert sclient.post("/children", json={"name": "dup-0"}).status_code == 201
    statuses = _mixed_requests(sclient, 1000)
    assert set(statuses) == {201, 400, 409, 418, 422, 500}
    assert sdb.engine.pool.checkedout() == 0
    assert len(names(sdb)) == 701


def test_concurrent_requests_get_their_own_session(aclient: TestClient, adb: Database) -> None:
    async def fire() -> list[int]:
        transport = httpx.ASGITransport(app=aclient.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            responses = await asyncio.gather(*(ac.get("/session-id") for _ in range(50)))
        assert {r.status_code for r in responses} == {200}
        return [r.json()["id"] for r in responses]

    ids = aclient.portal.call(fire)  # type: ignore[union-attr]
    assert len(set(ids)) == 50
    assert adb.engine.pool.checkedout() == 0


def test_concurrent_sync_requests_get_their_own_session(
    sclient: TestClient, sdb: SyncDatabase
) -> None:
    async def fire() -> list[int]:
        transport = httpx.ASGITransport(app=sclient.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            responses = await asyncio.gather(*(ac.get("/session-id") for _ in range(50)))
        assert {r.status_code for r in responses} == {200}
        return [r.json()["id"] for r in responses]

    ids = sclient.portal.call(fire)  # type: ignore[union-attr]
    assert len(set(ids)) == 50
    assert sdb.engine.pool.checkedout() == 0


# --- session_scope, background tasks, lifespan -------------------------------------------


def test_background_task_uses_its_own_scope(aclient: TestClient, sdb: SyncDatabase) -> None:
    response = aclient.post("/children/background", json={"name": "later"})
    assert response.status_code == 202
    assert names(sdb) == ["later"]  # TestClient runs background tasks before returning


def test_session_scope_commits_and_rolls_back(adb: Database, sdb: SyncDatabase) -> None:
    async def scenario() -> None:
        async with adb.session_scope() as session:
            session.add(Child(parent_id=1, name="kept"))
        with pytest.raises(ValueError, match="nope"):  # noqa: PT012 - the raise is the point
            async with adb.session_scope() as session:
                session.add(Child(parent_id=1, name="dropped"))
                await session.flush()
                raise ValueError("nope")
        await adb.dispose()

    asyncio.run(scenario())
    assert names(sdb) == ["kept"]


def test_sync_session_scope_maps_errors(sdb: SyncDatabase) -> None:
    with pytest.raises(Conflict), sdb.session_scope() as session:
        session.add(Child(parent_id=404, name="no-parent"))
    assert sdb.engine.pool.checkedout() == 0
    assert names(sdb) == []


def test_lifespan_composes_and_disposes(target: Target) -> None:  # noqa: F811
    db = Database(target.async_url, **target.async_kwargs)
    from contextlib import asynccontextmanager

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with db.lifespan(app):
            await db.create_all(Base.metadata)
            events.append("started")
            yield
        events.append("disposed")

    app = FastAPI(lifespan=lifespan)

    @app.get("/count")
    async def count(session: db.Session) -> int:
        return int(await session.scalar(select(func.count()).select_from(Parent)) or 0)

    with TestClient(app) as client:
        assert client.get("/count").json() == 0
        assert db.engine.pool.checkedout() == 0
    assert events == ["started", "disposed"]


def test_session_alias_carries_function_scope(adb: Database) -> None:
    assert adb.depends.scope == "function"
    assert adb.Session.__metadata__[0] is adb.depends
    assert adb.Session.__origin__ is AsyncSession
    sync = SyncDatabase("sqlite://")
    assert sync.depends.scope == "function"
    assert sync.Session.__origin__ is SyncSession


# --- SQLite defaults ---------------------------------------------------------------------


def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = SyncDatabase(f"sqlite:///{tmp_path / 'p.db'}")
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    off = SyncDatabase(f"sqlite:///{tmp_path / 'q.db'}", sqlite_wal=False)
    with off.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "delete"

    async def async_pragmas() -> tuple[Any, Any]:
        adb = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        async with adb.engine.connect() as connection:
            fk = (await connection.execute(text("PRAGMA foreign_keys"))).scalar()
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
        await adb.dispose()
        return fk, journal

    assert asyncio.run(async_pragmas()) == (1, "wal")


def test_in_memory_sqlite_is_one_database(tmp_path: Path) -> None:
    db = SyncDatabase("sqlite://")
    db.create_all(Base.metadata)
    with db.session_scope() as session:
        session.add(Parent(id=7))
    with db.session_scope() as session:
        assert session.get(Parent, 7) is not None


def test_sync_sqlite_session_crosses_threads(tmp_path: Path) -> None:
    # FastAPI runs def endpoints in worker threads; check_same_thread must be off.
    db = SyncDatabase(f"sqlite:///{tmp_path / 't.db'}")
    db.create_all(Base.metadata)
    app = FastAPI()

    @app.get("/n")
    def n(session: db.Session) -> int:
        return int(session.scalar(select(func.count()).select_from(Parent)) or 0)

    with TestClient(app) as client:
        assert [client.get("/n").json() for _ in range(5)] == [0] * 5


# --- configuration errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "url", "match"),
    [
        pytest.param(Database, "nosuch+driver://x/y", "Unknown database URL scheme", id="unknown"),
        pytest.param(Database, "not a url", "Cannot parse database URL", id="garbage"),
        pytest.param(Database, "sqlite:///x.db", "not an async driver", id="sync-driver"),
        pytest.param(SyncDatabase, "sqlite+aiosqlite:///x.db", "async driver", id="async-driver"),
        pytest.param(
            SyncDatabase, "nosuch://x/y", "Unknown database URL scheme", id="sync-unknown"
        ),
    ],
)
def test_bad_configuration(factory: Callable[[str], object], url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory(url)


def test_missing_driver_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"fastkit-fastapi\[postgres\]"):
        SyncDatabase("postgresql+psycopg2://u@localhost/db")


def test_import_without_sqlalchemy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "try:\n    import fastkit.db\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("MissingDependencyError")
    assert 'pip install "fastkit-fastapi[sqlalchemy]"' in out


def test_password_hidden_in_repr() -> None:
    db = Database("postgresql+asyncpg://user:s3cret@localhost/db")
    assert "s3cret" not in repr(db)


def test_translate_error_leaves_unrelated_errors_alone() -> None:
    assert isinstance(translate_error(ConnectionRefusedError()), ConnectionRefusedError)
    original = KeyError("x")
    assert translate_error(original) is original
    assert isinstance(ServiceUnavailable(), ServiceUnavailable)


# --- create_all while another process creates the same tables ----------------------------


def fake_race(db: Database | SyncDatabase, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first check of each table says "missing" though it exists, as when another worker
    created it just after this one looked; the CREATE TABLE then fails. Returns the tables
    whose check was faked."""
    dialect = db.engine.dialect
    faked: list[str] = []

    def first_time(name: str) -> bool:
        if name in faked:
            return False
        faked.append(name)
        return True

    real_one = dialect.has_table

    def has_table(connection: Any, table_name: str, *args: Any, **kwargs: Any) -> bool:
        return not first_time(table_name) and bool(
            real_one(connection, table_name, *args, **kwargs)
        )

    monkeypatch.setattr(dialect, "has_table", has_table)
    real_many = getattr(dialect, "has_multi_table", None)
    if real_many is not None:  # SQLAlchemy 2.1 checks all the tables in one call

        def has_multi_table(connection: Any, names: Any, **kwargs: Any) -> Any:
            found = dict(real_many(connection, names, **kwargs))
            for key in found:
                if first_time(key[1]):
                    found[key] = False
            return found

        monkeypatch.setattr(dialect, "has_multi_table", has_multi_table)
    return faked


def test_create_all_checks_again_when_a_table_appeared_meanwhile(
    adb: Database,
    sdb: SyncDatabase,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    faked = fake_race(adb, monkeypatch)

    async def create() -> None:
        try:
            await adb.create_all(Base.metadata)
        finally:
            await adb.dispose()

    with caplog.at_level(logging.DEBUG, logger="fastkit.db"):
        asyncio.run(create())  # no error: the second pass finds the table made
    assert faked
    assert "create_all raced another process; checking again" in caplog.messages
    with sdb.session_scope() as session:  # nothing dropped or recreated: parent 1 is there
        assert session.scalar(select(func.count()).select_from(Parent)) == 1


def test_sync_create_all_checks_again_when_a_table_appeared_meanwhile(
    sdb: SyncDatabase, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    faked = fake_race(sdb, monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="fastkit.db"):
        sdb.create_all(Base.metadata)
    assert faked
    assert "create_all raced another process; checking again" in caplog.messages


def test_create_all_does_not_retry_what_a_retry_cannot_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No server: raised at once, not tried three times."""
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/test")

    async def create() -> None:
        try:
            await db.create_all(Base.metadata)
        finally:
            await db.dispose()

    with caplog.at_level(logging.DEBUG, logger="fastkit.db"), pytest.raises(ConnectionRefusedError):
        asyncio.run(create())
    assert "create_all raced another process; checking again" not in caplog.messages
