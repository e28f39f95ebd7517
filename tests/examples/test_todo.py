"""examples/todo in process: every endpoint, happy and unhappy, on a fresh app per test."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import event, select, update
from sqlalchemy.engine import make_url

from examples.todo.deps import worker_count
from examples.todo.main import create_app
from examples.todo.models import User
from examples.todo.settings import Settings
from fastkit.auth import PasswordHasher
from fastkit.db import Database
from tests.examples.todo_support import (
    DEMO_PASSWORD,
    JWT_SECRET,
    NO_POSTGRES,
    NO_REDIS,
    POSTGRES_URL,
    REDIS_URL,
    base_env,
    postgres_schema,
)

INVALID_TOKEN = {"code": 401, "message": "Invalid or expired token", "data": None}
# RFC 6749 5.2, with the envelope's members beside.
WRONG_CREDENTIALS = {
    "code": 400,
    "message": "Incorrect username or password",
    "data": None,
    "error": "invalid_grant",
    "error_description": "Incorrect username or password",
}
TODO_NOT_FOUND = {"code": 404, "message": "Todo not found", "data": None}
PASSWORD = "correct horse"


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The app's environment, set before any app is made: SQLite in tmp_path by default."""
    monkeypatch.chdir(tmp_path)  # no stray .env file is read
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)  # one worker, whatever runs the tests
    values = base_env(tmp_path)
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip(NO_REDIS)
        values["REDIS_URL"] = REDIS_URL
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip(NO_POSTGRES)
        with postgres_schema() as pg:
            values.update(pg)
            for key, value in values.items():
                monkeypatch.setenv(key, value)
            yield values
        return
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    yield values


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as client:
        yield client


# --- helpers -----------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/users", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def login(
    client: TestClient, username: str, password: str = PASSWORD, scope: str | None = None
) -> dict[str, Any]:
    form = {"username": username, "password": password}
    if scope is not None:
        form["scope"] = scope
    response = client.post("/auth/token", data=form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def user_headers(client: TestClient, username: str, scope: str | None = None) -> dict[str, str]:
    register(client, username)
    return bearer(login(client, username, scope=scope)["access_token"])


def create_todos(client: TestClient, headers: dict[str, str], titles: list[str]) -> list[int]:
    ids = []
    for title in titles:
        response = client.post("/todos", json={"title": title}, headers=headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["id"])
    return ids


def craft_access_token(sub: str, *, exp_in: int, secret: str = JWT_SECRET) -> str:
    now = int(time.time())
    claims = {
        "sub": sub,
        "iat": now - 3600,
        "nbf": now - 3600,
        "exp": now + exp_in,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "iss": "fastkit-todo",
        "scopes": ["todos:read", "todos:write"],
    }
    return jwt.encode(claims, secret, algorithm="HS256")


# --- health, startup ---------------------------------------------------------------------


def test_health(client: TestClient) -> None:
    """Readiness checks the database (and Redis when REDIS_URL is set); liveness nothing."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    body = response.json()
    assert body["status"] == "pass"
    services = client.app.state.services  # type: ignore[attr-defined]
    expected = {"database", "redis"} if services.settings.redis_url else {"database"}
    assert set(body["checks"]) == expected
    assert "x-request-id" in response.headers
    assert client.get("/health/live").json() == {"status": "pass"}


def test_health_is_503_when_the_database_is_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(self: Database, *, timeout: float = 5.0) -> bool:
        return False

    monkeypatch.setattr(Database, "ping", down)  # before the app takes its checks
    with TestClient(create_app(client.app.state.services.settings)) as fresh:  # type: ignore[attr-defined]
        response = fresh.get("/health")
        assert fresh.get("/health/live").status_code == 200  # liveness does not care
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["output"]) == ("fail", "Failing: database.")
    assert body["checks"]["database"][0]["output"] == "Returned false."


def test_demo_user_is_created_once_and_logged(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="todo"), TestClient(create_app(Settings())) as c:
        assert login(c, "demo", DEMO_PASSWORD)["scope"] == "todos:read todos:write"
    created = [r.getMessage() for r in caplog.records if "demo user" in r.getMessage()]
    assert created == ["Created the demo user: username 'demo', password (DEMO_PASSWORD)"]
    assert DEMO_PASSWORD not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="todo"), TestClient(create_app(Settings())):
        pass  # the same database: the demo user exists; a later start says how to find it
    [hint] = [r.getMessage() for r in caplog.records if "demo user" in r.getMessage()]
    assert hint.startswith(
        "The demo user 'demo' exists: its password was logged by the start that created it"
    )
    url = make_url(Settings().database_url)
    if url.get_backend_name() == "sqlite":
        assert hint.endswith(f"Lost it? Stop the app and delete {url.database} to start over.")
    else:
        assert hint.endswith("Lost it? Delete that user from the database, and a new one is made.")
    assert DEMO_PASSWORD not in caplog.text


async def start_together(count: int = 2) -> None:
    """``count`` apps' startups on one event loop at once, as workers of one server."""
    apps = [create_app(Settings()) for _ in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(
            *(stack.enter_async_context(app.router.lifespan_context(app)) for app in apps)
        )


CREATED = "Created the demo user: username 'demo', password (DEMO_PASSWORD)"
CREATED_BY_ANOTHER = (
    "The demo user 'demo' was created by another worker starting at the same time; "
    "its password is DEMO_PASSWORD."
)


def test_two_workers_creating_the_tables_together_start_cleanly(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Both may find no tables and both create them: the later ``CREATE TABLE`` fails
    (SQLite: "already exists", PostgreSQL: a unique violation in its catalog) and is checked
    again (tests/test_db.py forces that race). Nothing is logged as a warning or with a
    traceback, and both starts succeed."""
    with caplog.at_level(logging.DEBUG):
        asyncio.run(start_together())
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in shown if r.levelno >= logging.WARNING or r.exc_info] == []
    demo = [r.getMessage() for r in caplog.records if "demo user" in r.getMessage()]
    assert demo[0] == CREATED
    # The other start found the user made, or lost the insert to it.
    assert len(demo) == 2
    assert demo[1] == CREATED_BY_ANOTHER or demo[1].startswith("The demo user 'demo' exists")
    with TestClient(create_app(Settings())) as c:
        assert login(c, "demo", DEMO_PASSWORD)["token_type"] == "bearer"


def test_two_workers_creating_the_demo_user_together_log_no_traceback(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Both find no demo user, both hash its password and both insert it: the unique
    username refuses the second, which says so in one line. (The hashing waits until both
    starts reach it: both have checked before either inserts, whatever the machine's load.)"""
    monkeypatch.setenv("DEMO_USERNAME", "")
    asyncio.run(start_together(1))  # the tables, no demo user
    monkeypatch.setenv("DEMO_USERNAME", "demo")
    arrived: list[object] = []
    both = asyncio.Event()
    original = PasswordHasher.ahash

    async def ahash(self: PasswordHasher, password: str) -> str:
        arrived.append(self)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)
        return await original(self, password)

    monkeypatch.setattr(PasswordHasher, "ahash", ahash)
    with caplog.at_level(logging.INFO):
        asyncio.run(start_together())
    demo = [r.getMessage() for r in caplog.records if "demo user" in r.getMessage()]
    assert sorted(demo) == sorted([CREATED, CREATED_BY_ANOTHER])  # either may log first
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    with TestClient(create_app(Settings())) as c:
        assert login(c, "demo", DEMO_PASSWORD)["token_type"] == "bearer"


def test_random_demo_password_is_printed_in_the_log(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("DEMO_PASSWORD")
    monkeypatch.setenv("DEMO_USERNAME", "tester")
    with caplog.at_level(logging.INFO, logger="todo"), TestClient(create_app(Settings())) as c:
        [line] = [r.getMessage() for r in caplog.records if "demo user" in r.getMessage()]
        password = line.rsplit(" ", 1)[1]
        assert line == f"Created the demo user: username 'tester', password {password}"
        assert login(c, "tester", password)["token_type"] == "bearer"


def test_no_demo_user_when_disabled(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_USERNAME", "")
    with TestClient(create_app(Settings())) as c:
        response = c.post("/auth/token", data={"username": "demo", "password": DEMO_PASSWORD})
        assert (response.status_code, response.json()) == (400, WRONG_CREDENTIALS)


def test_random_jwt_secret_is_warned_about(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("JWT_SECRET")
    with caplog.at_level(logging.INFO, logger="todo"), TestClient(create_app(Settings())) as c:
        token = login(c, "demo", DEMO_PASSWORD)["access_token"]
        assert c.get("/users/me", headers=bearer(token)).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["JWT_SECRET is not set"]


# --- how many workers: WEB_CONCURRENCY, --workers ----------------------------------------


@pytest.mark.parametrize(
    ("environ", "args", "workers"),
    [
        pytest.param({}, [], 1, id="nothing"),
        pytest.param({"WEB_CONCURRENCY": "1"}, [], 1, id="env-1"),
        pytest.param({"WEB_CONCURRENCY": "4"}, [], 4, id="env-4"),
        pytest.param({"WEB_CONCURRENCY": " 3 "}, [], 3, id="env-spaces"),
        pytest.param({"WEB_CONCURRENCY": ""}, [], 1, id="env-empty"),
        pytest.param({"WEB_CONCURRENCY": "abc"}, [], 1, id="env-garbage"),
        pytest.param({"WEB_CONCURRENCY": "2.5"}, [], 1, id="env-float"),
        pytest.param({"WEB_CONCURRENCY": "0"}, [], 1, id="env-zero"),
        pytest.param({"WEB_CONCURRENCY": "-3"}, [], 1, id="env-negative"),
        pytest.param({}, ["--workers", "2"], 2, id="workers-space"),
        pytest.param({}, ["--workers=3"], 3, id="workers-equals"),
        pytest.param({}, ["-w", "4"], 4, id="w-space"),
        pytest.param({}, ["-w5"], 5, id="w-attached"),
        pytest.param({}, ["--workers", "1"], 1, id="workers-1"),
        pytest.param({}, ["--workers", "abc"], 1, id="workers-garbage"),
        pytest.param({}, ["--workers="], 1, id="workers-equals-empty"),
        pytest.param({}, ["--workers"], 1, id="workers-without-value"),
        pytest.param({}, ["-w"], 1, id="w-without-value"),
        pytest.param({}, ["--workers", "2", "--workers", "3"], 3, id="last-one-wins"),
        pytest.param({"WEB_CONCURRENCY": "4"}, ["--workers", "1"], 1, id="argv-over-env"),
        pytest.param({"WEB_CONCURRENCY": "4"}, ["--workers", "x"], 4, id="garbage-argv-env"),
        pytest.param({}, ["--port", "2", "--reload"], 1, id="other-options"),
        pytest.param({}, ["--worker-class", "uvicorn.workers.UvicornWorker"], 1, id="worker-cls"),
        pytest.param({}, ["--workers-per-core", "2"], 1, id="other-option-prefix"),
    ],
)
def test_worker_count(environ: dict[str, str], args: list[str], workers: int) -> None:
    assert worker_count(environ, ["uvicorn", "examples.todo.main:app", *args]) == workers


def test_worker_count_reads_the_process_environment_and_argv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["uvicorn", "examples.todo.main:app"])
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert worker_count() == 3
    monkeypatch.delenv("WEB_CONCURRENCY")
    assert worker_count() == 1
    # multiprocessing's spawn sets the child's sys.argv to the parent's (a new list object).
    monkeypatch.setattr(sys, "argv", ["uvicorn", "examples.todo.main:app", "--workers", "2"])
    assert worker_count() == 2


@pytest.mark.parametrize(
    ("web_concurrency", "level"),
    [
        pytest.param(None, logging.INFO, id="one-worker"),
        pytest.param("2", logging.WARNING, id="two-workers"),
        pytest.param("abc", logging.INFO, id="garbage"),
    ],
)
def test_memory_revocation_is_a_warning_with_several_workers(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    web_concurrency: str | None,
    level: int,
) -> None:
    if env["REDIS_URL"]:
        pytest.skip("with REDIS_URL, logouts are shared")
    monkeypatch.setattr(sys, "argv", ["uvicorn", "examples.todo.main:app"])
    if web_concurrency is not None:
        monkeypatch.setenv("WEB_CONCURRENCY", web_concurrency)
    with caplog.at_level(logging.INFO, logger="todo"), TestClient(create_app(Settings())):
        pass
    [record] = [r for r in caplog.records if r.getMessage().startswith("REDIS_URL is not set")]
    assert record.levelno == level


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "used"),
    [
        pytest.param("postgres://u:p@db/app", "postgresql+asyncpg://u:p@db/app", id="postgres"),
        pytest.param("postgresql://u:p@db/app", "postgresql+asyncpg://u:p@db/app", id="postgresql"),
        pytest.param(
            "postgresql+asyncpg://u:p@db/app", "postgresql+asyncpg://u:p@db/app", id="asyncpg"
        ),
        pytest.param("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db", id="sqlite"),
    ],
)
def test_settings_database_url_gets_the_async_driver(given: str, used: str) -> None:
    assert Settings(_env_file=None, database_url=given).database_url == used


def test_settings_refuse_a_short_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(_env_file=None, jwt_secret="too-short")


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "DEMO_USERNAME", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./todo.db"
    assert (settings.redis_url, settings.jwt_secret) == (None, None)
    assert (settings.demo_username, settings.log_level) == ("demo", "INFO")


# --- register, login, me -----------------------------------------------------------------


def test_register_answers_the_user(client: TestClient) -> None:
    user = register(client, "alice")
    assert user["username"] == "alice"
    assert user["scopes"] == ["todos:read", "todos:write"]
    assert user["created_at"].endswith("Z")
    assert set(user) == {"id", "username", "scopes", "created_at"}  # no password hash


def test_register_twice_is_409(client: TestClient) -> None:
    register(client, "alice")
    response = client.post("/users", json={"username": "alice", "password": "other password"})
    assert response.status_code == 409
    assert response.json() == {"code": 409, "message": "Username already taken", "data": None}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param({"username": "al", "password": PASSWORD}, "username", id="short-name"),
        pytest.param({"username": "a b c", "password": PASSWORD}, "username", id="space"),
        pytest.param({"username": "alice", "password": "short"}, "password", id="short-pw"),
        pytest.param({"username": "alice", "password": "x" * 1025}, "password", id="long-pw"),
        pytest.param({"username": "alice"}, "password", id="missing"),
    ],
)
def test_register_validates(client: TestClient, body: dict[str, str], loc: str) -> None:
    response = client.post("/users", json=body)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["data"]] == [["body", loc]]


def test_login_answers_the_oauth2_token_response(client: TestClient) -> None:
    register(client, "alice")
    response = client.post("/auth/token", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 900)
    assert body["scope"] == "todos:read todos:write"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("alice", "wrong password", id="wrong-password"),
        pytest.param("nobody", PASSWORD, id="unknown-user"),
        pytest.param("ALICE", PASSWORD, id="other-case"),
    ],
)
def test_login_failures_are_one_invalid_grant(
    client: TestClient, username: str, password: str
) -> None:
    register(client, "alice")
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 400
    assert response.json() == WRONG_CREDENTIALS
    assert response.headers["cache-control"] == "no-store"


def test_me(client: TestClient) -> None:
    user = register(client, "alice")
    token = login(client, "alice")["access_token"]
    response = client.get("/users/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["data"] == user


def craft(kind: str, sub: str) -> str:
    if kind == "expired":
        return craft_access_token(sub, exp_in=-60)
    if kind == "other-secret":
        return craft_access_token(sub, exp_in=600, secret="another-secret-of-at-least-32-bytes!!")
    if kind == "unknown-user":
        return craft_access_token("999999", exp_in=600)
    assert kind == "garbage"
    return "not.a.token"


@pytest.mark.parametrize("kind", ["expired", "other-secret", "unknown-user", "garbage"])
def test_me_refuses_bad_tokens(client: TestClient, kind: str) -> None:
    user = register(client, "alice")
    # The crafted claims are those of a real token: only what the kind changes is wrong.
    fine = client.get("/users/me", headers=bearer(craft_access_token(str(user["id"]), exp_in=600)))
    assert fine.status_code == 200
    response = client.get("/users/me", headers=bearer(craft(kind, str(user["id"]))))
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_me_without_token_is_401(client: TestClient) -> None:
    response = client.get("/users/me")
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_inactive_user_is_403_and_cannot_log_in(client: TestClient) -> None:
    register(client, "alice")
    headers = bearer(login(client, "alice")["access_token"])
    db = client.app.state.services.db  # type: ignore[attr-defined]

    async def deactivate() -> None:
        async with db.session_scope() as session:
            await session.execute(
                update(User).where(User.username == "alice").values(is_active=False)
            )

    client.portal.call(deactivate)  # type: ignore[union-attr]
    response = client.get("/users/me", headers=headers)
    assert response.status_code == 403
    assert response.json() == {"code": 403, "message": "Inactive user", "data": None}
    login_again = client.post("/auth/token", data={"username": "alice", "password": PASSWORD})
    assert (login_again.status_code, login_again.json()) == (400, WRONG_CREDENTIALS)


def stored_hash(client: TestClient, username: str) -> str:
    db = client.app.state.services.db  # type: ignore[attr-defined]

    async def read() -> str:
        async with db.session_scope() as session:
            found: str = await session.scalar(
                select(User.password_hash).where(User.username == username)
            )
            return found

    stored: str = client.portal.call(read)  # type: ignore[union-attr]
    return stored


def set_hash(client: TestClient, username: str, password_hash: str) -> None:
    db = client.app.state.services.db  # type: ignore[attr-defined]

    async def write() -> None:
        async with db.session_scope() as session:
            await session.execute(
                update(User).where(User.username == username).values(password_hash=password_hash)
            )

    client.portal.call(write)  # type: ignore[union-attr]


def test_a_bcrypt_hash_is_upgraded_at_login(client: TestClient) -> None:
    register(client, "alice")
    register(client, "bob")
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    set_hash(client, "alice", legacy)
    bob_before = stored_hash(client, "bob")

    assert login(client, "alice")["token_type"] == "bearer"
    upgraded = stored_hash(client, "alice")
    assert upgraded.startswith("$argon2id$")
    assert client.app.state.services.hasher.verify(PASSWORD, upgraded)  # type: ignore[attr-defined]
    assert stored_hash(client, "bob") == bob_before  # the UPDATE is for alice's row only

    login(client, "alice")
    assert stored_hash(client, "alice") == upgraded  # an up-to-date hash is left alone


def test_a_password_changed_during_the_login_is_not_overwritten_by_the_upgrade(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(client, "alice")
    set_hash(client, "alice", bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode())
    services = client.app.state.services  # type: ignore[attr-defined]
    changed = services.hasher.hash("a brand new password")
    real = services.hasher.averify_and_update

    async def verify_while_the_password_changes(password: str, hashed: str) -> Any:
        result = await real(password, hashed)
        async with services.db.session_scope() as session:  # another request, meanwhile
            await session.execute(
                update(User).where(User.username == "alice").values(password_hash=changed)
            )
        return result

    monkeypatch.setattr(services.hasher, "averify_and_update", verify_while_the_password_changes)
    assert login(client, "alice")["token_type"] == "bearer"  # the password it was checked with
    assert stored_hash(client, "alice") == changed


def test_no_upgrade_is_stored_for_a_wrong_password_or_an_inactive_user(
    client: TestClient,
) -> None:
    register(client, "alice")
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    set_hash(client, "alice", legacy)
    client.post("/auth/token", data={"username": "alice", "password": "wrong password"})
    assert stored_hash(client, "alice") == legacy

    db = client.app.state.services.db  # type: ignore[attr-defined]

    async def deactivate() -> None:
        async with db.session_scope() as session:
            await session.execute(
                update(User).where(User.username == "alice").values(is_active=False)
            )

    client.portal.call(deactivate)  # type: ignore[union-attr]
    client.post("/auth/token", data={"username": "alice", "password": PASSWORD})
    assert stored_hash(client, "alice") == legacy


@pytest.mark.parametrize(
    ("username", "password", "legacy", "calls"),
    [
        pytest.param("alice", PASSWORD, False, ["averify_and_update"], id="right-password"),
        pytest.param("alice", PASSWORD, True, ["averify_and_update"], id="hash-upgrade"),
        pytest.param("alice", "wrong password", False, ["averify_and_update"], id="wrong"),
        pytest.param("nobody", PASSWORD, False, ["adummy_verify"], id="unknown-user"),
    ],
)
def test_login_hashes_with_no_database_connection_checked_out(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    username: str,
    password: str,
    legacy: bool,
    calls: list[str],
) -> None:
    """A connection held through argon2 (0.1 s and more) lets a login flood drain the pool."""
    register(client, "alice")
    if legacy:
        set_hash(client, "alice", bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode())
    services = client.app.state.services  # type: ignore[attr-defined]
    pool = services.db.engine.pool
    seen: list[tuple[str, int, int]] = []

    def watched(name: str) -> Any:
        real = getattr(services.hasher, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            before = pool.checkedout()
            result = await real(*args, **kwargs)
            seen.append((name, before, pool.checkedout()))
            return result

        return call

    for name in ("averify_and_update", "adummy_verify"):
        monkeypatch.setattr(services.hasher, name, watched(name))
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert seen == [(name, 0, 0) for name in calls]
    if password == PASSWORD and username == "alice":
        assert response.status_code == 200
    if legacy:
        assert stored_hash(client, "alice").startswith("$argon2id$")
    assert pool.checkedout() == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/users/me", None, id="me"),
        pytest.param("GET", "/todos", None, id="list"),
        pytest.param("GET", "/todos/feed", None, id="feed"),
        pytest.param("POST", "/todos", {"title": "new"}, id="create"),
        pytest.param("GET", "/todos/{id}", None, id="read"),
        pytest.param("PATCH", "/todos/{id}", {"done": True}, id="update"),
        pytest.param("DELETE", "/todos/{id}", None, id="delete"),
    ],
)
def test_an_authenticated_request_checks_out_one_connection(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """The user is read through the endpoint's own session, not a second one."""
    headers = user_headers(client, "alice")
    [todo_id] = create_todos(client, headers, ["first"])
    engine = client.app.state.services.db.engine.sync_engine  # type: ignore[attr-defined]
    checkouts: list[object] = []

    def count(dbapi_connection: object, *_: object) -> None:
        checkouts.append(dbapi_connection)

    event.listen(engine, "checkout", count)
    try:
        response = client.request(method, path.format(id=todo_id), json=body, headers=headers)
    finally:
        event.remove(engine, "checkout", count)
    assert response.status_code < 300, response.text
    assert len(checkouts) == 1


# --- refresh, logout ---------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_login(client: TestClient) -> None:
    register(client, "alice")
    first = login(client, "alice")
    response = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/users/me", headers=bearer(second["access_token"])).status_code == 200

    reused = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json() == INVALID_TOKEN
    # The whole login is over, for the user and for whoever copied the token.
    assert client.get("/users/me", headers=bearer(second["access_token"])).status_code == 401
    again = client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401


def test_logout_revokes_the_access_and_refresh_tokens(client: TestClient) -> None:
    register(client, "alice")
    tokens = login(client, "alice")
    other_device = login(client, "alice")
    response = client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "Logged out", "data": None}

    me = client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert (me.status_code, me.json()) == (401, INVALID_TOKEN)
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    again = client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert again.status_code == 401
    # Another login of the same user goes on.
    assert client.get("/users/me", headers=bearer(other_device["access_token"])).status_code == 200


# --- todos: CRUD and ownership -----------------------------------------------------------


def test_todo_crud(client: TestClient) -> None:
    headers = user_headers(client, "alice")
    created = client.post("/todos", json={"title": "buy milk"}, headers=headers)
    assert created.status_code == 201
    todo = created.json()["data"]
    assert (todo["title"], todo["done"]) == ("buy milk", False)
    assert todo["created_at"].endswith(("Z", "+00:00"))

    read = client.get(f"/todos/{todo['id']}", headers=headers)
    assert read.json() == {"code": 200, "message": "success", "data": todo}

    patched = client.patch(f"/todos/{todo['id']}", json={"done": True}, headers=headers)
    assert patched.json()["data"] == {**todo, "done": True}
    renamed = client.patch(f"/todos/{todo['id']}", json={"title": "buy oat milk"}, headers=headers)
    assert renamed.json()["data"] == {**todo, "done": True, "title": "buy oat milk"}

    deleted = client.delete(f"/todos/{todo['id']}", headers=headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = client.get(f"/todos/{todo['id']}", headers=headers)
    assert (gone.status_code, gone.json()) == (404, TODO_NOT_FOUND)
    assert client.delete(f"/todos/{todo['id']}", headers=headers).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"title": ""}, id="empty"),
        pytest.param({"title": "x" * 201}, id="long"),
        pytest.param({}, id="missing"),
        pytest.param({"title": "ok", "done": "maybe"}, id="done-not-bool"),
    ],
)
def test_create_todo_validates(client: TestClient, body: dict[str, Any]) -> None:
    headers = user_headers(client, "alice")
    response = client.post("/todos", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["data"][0]["loc"][0] == "body"


def test_update_todo_validates(client: TestClient) -> None:
    headers = user_headers(client, "alice")
    [todo_id] = create_todos(client, headers, ["a"])
    response = client.patch(f"/todos/{todo_id}", json={"title": ""}, headers=headers)
    assert response.status_code == 422


def test_other_users_todos_are_404(client: TestClient) -> None:
    alice = user_headers(client, "alice")
    bob = user_headers(client, "bob")
    [todo_id] = create_todos(client, alice, ["alice's secret"])

    for method in ("GET", "PATCH", "DELETE"):
        body = {"done": True} if method == "PATCH" else None
        response = client.request(method, f"/todos/{todo_id}", headers=bob, json=body)
        assert (response.status_code, response.json()) == (404, TODO_NOT_FOUND), method
    assert client.get("/todos", headers=bob).json()["data"]["total"] == 0
    assert client.get("/todos/feed", headers=bob).json()["data"]["items"] == []
    # Still there, unchanged, for its owner.
    assert client.get(f"/todos/{todo_id}", headers=alice).json()["data"]["done"] is False


def test_todos_need_a_token(client: TestClient) -> None:
    for method, path in [("GET", "/todos"), ("GET", "/todos/feed"), ("POST", "/todos")]:
        response = client.request(method, path, json={"title": "x"})
        assert (response.status_code, response.json()) == (401, INVALID_TOKEN), path


def test_read_only_token_cannot_write(client: TestClient) -> None:
    register(client, "alice")
    writer = bearer(login(client, "alice")["access_token"])
    [todo_id] = create_todos(client, writer, ["a"])
    tokens = login(client, "alice", scope="todos:read")
    assert tokens["scope"] == "todos:read"
    reader = bearer(tokens["access_token"])

    assert client.get("/todos", headers=reader).status_code == 200
    assert client.get(f"/todos/{todo_id}", headers=reader).status_code == 200
    for method, path in [
        ("POST", "/todos"),
        ("PATCH", f"/todos/{todo_id}"),
        ("DELETE", f"/todos/{todo_id}"),
    ]:
        response = client.request(method, path, json={"title": "x"}, headers=reader)
        assert response.status_code == 403, path
        assert response.json() == {"code": 403, "message": "Not enough permissions", "data": None}
        assert response.headers["www-authenticate"] == (
            'Bearer error="insufficient_scope", scope="todos:write"'
        )


def test_unknown_scope_is_invalid_scope(client: TestClient) -> None:
    register(client, "alice")
    response = client.post(
        "/auth/token", data={"username": "alice", "password": PASSWORD, "scope": "todos:read admin"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert login(client, "alice", scope="todos:read")["scope"] == "todos:read"


# --- todos: pages and cursors ------------------------------------------------------------

TITLES = ["kiwi", "apple", "mango", "banana", "cherry", "date", "fig"]


def test_page_listing_sorts_and_filters(client: TestClient) -> None:
    headers = user_headers(client, "alice")
    ids = create_todos(client, headers, TITLES)
    client.patch(f"/todos/{ids[0]}", json={"done": True}, headers=headers)

    newest = client.get("/todos", params={"page_size": 3}, headers=headers).json()["data"]
    assert [t["id"] for t in newest["items"]] == ids[::-1][:3]  # default: -created_at
    assert (newest["total"], newest["page"], newest["page_size"], newest["pages"]) == (7, 1, 3, 3)

    by_title = client.get(
        "/todos", params={"sort": "title", "page": 3, "page_size": 3}, headers=headers
    ).json()["data"]
    assert [t["title"] for t in by_title["items"]] == ["mango"]

    done_first = client.get("/todos", params={"sort": "-done,title"}, headers=headers).json()
    assert [t["title"] for t in done_first["data"]["items"]] == ["kiwi", *sorted(TITLES[1:])]

    open_only = client.get("/todos", params={"done": "false"}, headers=headers).json()["data"]
    assert open_only["total"] == 6
    assert "kiwi" not in [t["title"] for t in open_only["items"]]

    past_the_end = client.get("/todos", params={"page": 9}, headers=headers).json()["data"]
    assert (past_the_end["items"], past_the_end["total"]) == ([], 7)


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        pytest.param("/todos", {"page": 0}, "page", id="page-0"),
        pytest.param("/todos", {"page_size": 101}, "page_size", id="page-size-101"),
        pytest.param("/todos", {"page_size": "many"}, "page_size", id="page-size-text"),
        pytest.param("/todos", {"sort": "owner_id"}, "sort", id="sort-not-allowed"),
        pytest.param("/todos", {"sort": "title,title"}, "sort", id="sort-twice"),
        pytest.param("/todos", {"done": "perhaps"}, "done", id="done-not-bool"),
        pytest.param("/todos/feed", {"page_size": 0}, "page_size", id="size-0"),
        pytest.param("/todos/feed", {"page_size": 101}, "page_size", id="size-101"),
        pytest.param("/todos/feed", {"sort": "password_hash"}, "sort", id="feed-sort"),
        pytest.param("/todos/feed", {"cursor": "x" * 4097}, "cursor", id="cursor-too-long"),
    ],
)
def test_invalid_list_params_are_422(
    client: TestClient, path: str, params: dict[str, Any], loc: str
) -> None:
    headers = user_headers(client, "alice")
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert (body["code"], body["message"]) == (422, "Request validation failed")
    assert [e["loc"] for e in body["data"]] == [["query", loc]]


def test_cursor_pages_walk_forward_and_back(client: TestClient) -> None:
    headers = user_headers(client, "alice")
    create_todos(client, headers, TITLES)
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"size": 3, "sort": "title"}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/todos/feed", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [[t["title"] for t in p["items"]] for p in pages] == [
        ["apple", "banana", "cherry"],
        ["date", "fig", "kiwi"],
        ["mango"],
    ]
    assert pages[0]["previous_cursor"] is None
    back = client.get(
        "/todos/feed",
        params={"page_size": 3, "sort": "title", "cursor": pages[2]["previous_cursor"]},
        headers=headers,
    ).json()["data"]
    assert [t["title"] for t in back["items"]] == ["date", "fig", "kiwi"]


def test_cursor_default_order_is_newest_first(client: TestClient) -> None:
    headers = user_headers(client, "alice")
    ids = create_todos(client, headers, TITLES)
    first = client.get("/todos/feed", params={"page_size": 4}, headers=headers).json()["data"]
    rest = client.get(
        "/todos/feed", params={"page_size": 4, "cursor": first["next_cursor"]}, headers=headers
    ).json()["data"]
    assert [t["id"] for t in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None


def tamper(cursor: str) -> str:
    payload, signature = cursor.split(".")
    return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(tamper, "Invalid cursor: the signature does not match.", id="tampered"),
        pytest.param(
            lambda c: c.split(".")[0],
            "Invalid cursor: the signature does not match.",
            id="unsigned",
        ),
        pytest.param(
            lambda c: "!!!", "Invalid cursor: the signature does not match.", id="garbled"
        ),
    ],
)
def test_bad_cursor_is_400(client: TestClient, change: Any, message: str) -> None:
    headers = user_headers(client, "alice")
    create_todos(client, headers, TITLES)
    cursor = client.get("/todos/feed", params={"page_size": 2}, headers=headers).json()["data"][
        "next_cursor"
    ]
    response = client.get("/todos/feed", params={"cursor": change(cursor)}, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message, "data": None}


def test_cursor_for_another_sort_is_400(client: TestClient) -> None:
    headers = user_headers(client, "alice")
    create_todos(client, headers, TITLES)
    cursor = client.get("/todos/feed", params={"page_size": 2}, headers=headers).json()["data"][
        "next_cursor"
    ]
    response = client.get(
        "/todos/feed", params={"cursor": cursor, "sort": "title"}, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid cursor: it was made for another sort order; start over."
    )


# --- OpenAPI -----------------------------------------------------------------------------


def test_openapi_documents_envelopes_and_the_login(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    ok = openapi["paths"]["/todos"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("Envelope_Page_TodoOut__")
    [scheme] = openapi["components"]["securitySchemes"].values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"
    assert set(scheme["flows"]["password"]["scopes"]) == {"todos:read", "todos:write"}


# --- DATABASE_SCHEMA on PostgreSQL: created when missing ---------------------------------------


@pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)
def test_a_missing_database_schema_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with postgres_schema(create=False) as pg:
        for key, value in {**base_env(tmp_path), **pg}.items():
            monkeypatch.setenv(key, value)
        with TestClient(create_app(Settings())) as c:
            assert login(c, "demo", DEMO_PASSWORD)["token_type"] == "bearer"
        # Twice: the second start finds the schema and its tables.
        with TestClient(create_app(Settings())) as c:
            assert login(c, "demo", DEMO_PASSWORD)["token_type"] == "bearer"


# --- conditional requests and idempotency keys -------------------------------------------


def test_a_todo_has_an_etag_for_304s_and_stale_writes_get_412(client: TestClient) -> None:
    ann = user_headers(client, "ann")
    [todo_id] = create_todos(client, ann, ["write tests"])
    read = client.get(f"/todos/{todo_id}", headers=ann)
    etag = read.headers["etag"]
    not_modified = client.get(f"/todos/{todo_id}", headers={**ann, "If-None-Match": etag})
    assert (not_modified.status_code, not_modified.content) == (304, b"")

    done = client.patch(f"/todos/{todo_id}", json={"done": True}, headers={**ann, "If-Match": etag})
    assert done.status_code == 200
    assert done.headers["etag"] != etag  # a new version, a new tag
    # Another client still holds the old tag: its write is refused, and changes nothing.
    stale = client.patch(
        f"/todos/{todo_id}", json={"title": "overwritten"}, headers={**ann, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == 412
    assert client.get(f"/todos/{todo_id}", headers=ann).json()["data"]["title"] == "write tests"
    # The list gets a body ETag too.
    listed = client.get("/todos", headers=ann)
    assert (
        client.get("/todos", headers={**ann, "If-None-Match": listed.headers["etag"]}).status_code
        == 304
    )


def test_a_retried_post_with_an_idempotency_key_creates_one_todo(client: TestClient) -> None:
    ann = user_headers(client, "ann")
    key = {**ann, "Idempotency-Key": "create-milk-1"}
    first = client.post("/todos", json={"title": "milk"}, headers=key)
    retry = client.post("/todos", json={"title": "milk"}, headers=key)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert client.get("/todos", headers=ann).json()["data"]["total"] == 1
    reused = client.post("/todos", json={"title": "eggs"}, headers=key)
    assert reused.status_code == 422
    # Keys are per user, not per token: after logging in again, the retry is still ann's.
    again = bearer(login(client, "ann")["access_token"])
    assert again != ann
    later = client.post(
        "/todos", json={"title": "milk"}, headers={**again, "Idempotency-Key": "create-milk-1"}
    )
    assert (later.status_code, later.headers.get("idempotent-replayed")) == (201, "true")
    # Another user's key of the same name is their own.
    bob = user_headers(client, "bob")
    theirs = client.post(
        "/todos", json={"title": "milk"}, headers={**bob, "Idempotency-Key": "create-milk-1"}
    )
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers


def test_fifty_concurrent_posts_with_one_key_create_one_row(client: TestClient) -> None:
    """A client that fires its retries at once: one todo in the database, whatever the
    store (memory, or Redis with the redis env) and the database."""
    ann = user_headers(client, "ann")
    headers = {**ann, "Idempotency-Key": "burst-1"}

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            answers = await asyncio.gather(
                *(c.post("/todos", json={"title": "once"}, headers=headers) for _ in range(50))
            )
        return [answer.status_code for answer in answers]

    statuses = client.portal.call(burst)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409, 429}  # replayed, told to retry, or over the limit
    listed = client.get("/todos", headers=ann).json()["data"]
    assert [todo["title"] for todo in listed["items"]] == ["once"]
