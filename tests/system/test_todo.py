"""The todo example on two uvicorn workers, PostgreSQL and Redis, under a bounded mixed load,
then with PostgreSQL stopped and Redis stopped mid-run.

Opt-in (see ``conftest.py``), as root, against the services of ``.ci/run`` on 127.0.0.1::

    FASTKIT_SYSTEM_TESTS=1 hatch test -- tests/system

``FASTKIT_SYSTEM_LOAD_SECONDS`` (10 by default) bounds the load. The load: 16 clients mixing
creates, page and cursor lists, reads, auth failures and ~10% invalid requests, each with the
status it must get. The faults: PostgreSQL stopped (``pg_ctlcluster ... stop -m fast``), then
started; Redis' connections killed (``CLIENT KILL TYPE normal``); Redis stopped, then started;
four clients keep creating todos all through them. Both services are started again however
the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from tests.uvicorn_support import free_port, uvicorn_process

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

HOST = "127.0.0.1"
PG_URL = os.environ.get(
    "FASTKIT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOAD_SECONDS = float(os.environ.get("FASTKIT_SYSTEM_LOAD_SECONDS", "10"))
CONCURRENCY = 16
ROLE = "fastkit_reliability"  # the app's database user: its connections, in pg_stat_activity
PASSWORD = "reliability-pass-1"
TRANSPORT_ERRORS = (httpx.TransportError, asyncio.TimeoutError)

# --- services --------------------------------------------------------------------------


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", HOST, "-p", "5432"]).returncode == 0


def pg_ctl(action: str, *args: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *args]
    subprocess.run(command, check=True)


def pg_start() -> None:
    if not pg_ready():
        pg_ctl("start")
    for _ in range(60):
        if pg_ready():
            return
        time.sleep(0.5)
    pytest.fail("PostgreSQL did not come back within 30 s: start it as .ci/run does.")


def redis_cli(*args: str) -> str:
    command = ["redis-cli", "-h", HOST, "-p", "6379", *args]
    return subprocess.run(command, capture_output=True, text=True).stdout.strip()


def redis_stop() -> None:
    redis_cli("shutdown", "nosave")
    for _ in range(40):
        if redis_cli("ping") != "PONG":
            return
        time.sleep(0.25)
    pytest.fail("Redis did not stop within 10 s.")


def redis_start() -> None:
    if redis_cli("ping") != "PONG":
        os.makedirs("/var/lib/redis", exist_ok=True)
        os.makedirs("/var/log/redis", exist_ok=True)
        subprocess.run(
            [
                "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
                "--port", "6379", "--save", "", "--appendonly", "no",
                "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
            ],
            check=True,
        )  # fmt: skip
    for _ in range(40):
        if redis_cli("ping") == "PONG":
            return
        time.sleep(0.25)
    pytest.fail("Redis did not come back within 10 s: start it as .ci/run does.")


@contextlib.contextmanager
def sync_engine() -> Iterator[Engine]:
    engine = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"))
    try:
        yield engine
    finally:
        engine.dispose()


def busy_connections() -> int:
    """The app's connections running a query or in a transaction (``pg_stat_activity``)."""
    time.sleep(1.0)  # let the last responses' cleanups finish
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE usename = :r AND state IS DISTINCT FROM 'idle'"
    )
    with sync_engine() as engine, engine.connect() as connection:
        return int(connection.execute(text(query), {"r": ROLE}).scalar_one())


def rows_of(schema: str, users: list[User]) -> dict[int, str]:
    query = (
        f'SELECT t.id, t.title FROM "{schema}".todo_items t '
        f'JOIN "{schema}".todo_users u ON u.id = t.owner_id WHERE u.username = ANY(:names)'
    )
    with sync_engine() as engine, engine.connect() as connection:
        rows = connection.execute(text(query), {"names": [u.name for u in users]}).all()
    return {int(r[0]): str(r[1]) for r in rows}


@dataclass
class App:
    base: str
    schema: str


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The todo example on two workers, on its own schema, as a role of its own."""
    if os.geteuid() != 0:
        pytest.fail("The system tests stop and start PostgreSQL and Redis: run them as root.")
    from examples.todo.models import Base

    pg_start()
    redis_start()
    schema = f"reliability_{uuid.uuid4().hex[:10]}"
    with sync_engine() as engine, engine.begin() as connection:
        # Trust auth on the local test server: a role only to tell the app's connections apart.
        role = text("SELECT 1 FROM pg_roles WHERE rolname = :r")
        if connection.execute(role, {"r": ROLE}).first() is None:
            connection.execute(text(f"CREATE ROLE {ROLE} LOGIN SUPERUSER"))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text(f'SET search_path TO "{schema}"'))
        Base.metadata.create_all(connection)  # here, not by two racing workers
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": make_url(PG_URL).set(username=ROLE).render_as_string(hide_password=False),
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": REDIS_URL,
        "JWT_SECRET": "reliability-secret-0123456789abcdef-0123456789",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "DEMO_USERNAME": "",
        "LOG_LEVEL": "WARNING",
    }
    args = ["examples.todo.main:app", "--host", HOST, "--port", str(port), "--workers", "2"]
    try:
        with uvicorn_process(
            [*args, "--log-level", "warning", "--no-access-log"],
            log_path=tmp_path_factory.mktemp("system") / "uvicorn.log",
            ready_url=f"http://{HOST}:{port}/health",
            env=env,
            startup_timeout=60,
            stop_timeout=15,
        ):
            time.sleep(1.0)  # both workers up, not only the first to answer
            yield App(f"http://{HOST}:{port}", schema)
    finally:
        pg_start()
        redis_start()
        with sync_engine() as engine, engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


# --- load ------------------------------------------------------------------------------


@dataclass
class User:
    name: str
    token: str
    refresh: str
    todos: list[int] = field(default_factory=list)


@dataclass
class Load:
    users: list[User]
    requests: int = 0
    answered_5xx: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    not_envelope: list[str] = field(default_factory=list)
    transport_errors: Counter[str] = field(default_factory=Counter)
    created: dict[int, str] = field(default_factory=dict)  # id -> title, answered 201
    rows: dict[int, str] = field(default_factory=dict)  # the users' rows after the load
    busy: int = -1


INVALID = [
    ("POST", "/todos", {"json": {"title": ""}}, 422),
    ("POST", "/todos", {"json": {"title": "x" * 201}}, 422),
    ("POST", "/todos", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),  # noqa: E501
    ("GET", "/todos?page=0", {}, 422),
    ("GET", "/todos?page_size=100000", {}, 422),
    ("GET", "/todos?sort=password_hash", {}, 422),
    ("GET", "/todos/abc", {}, 422),
    ("GET", "/todos/99999999999", {}, 422),
    ("GET", "/todos/feed?cursor=garbage", {}, 400),
    ("PATCH", "/todos/1", {"json": {"done": "maybe"}}, 422),
]  # fmt: skip


def is_envelope(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == response.status_code and "data" in body


def bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


async def one(client: httpx.AsyncClient, user: User, load: Load, rng: random.Random) -> None:
    """One request of a random kind, and what its answer must be."""
    roll, headers, kwargs = rng.random(), bearer(user), {}
    if roll < 0.35:
        kind, method, path, expected = "create", "POST", "/todos", 201
        kwargs = {"json": {"title": f"todo-{uuid.uuid4().hex}"}}
    elif roll < 0.55:
        kind, method, expected = "list", "GET", 200
        path = f"/todos?page={rng.randint(1, 3)}&page_size={rng.choice([5, 20, 50])}"
    elif roll < 0.65:
        kind, method, path, expected = "feed", "GET", "/todos/feed?size=20", 200
    elif roll < 0.80:
        kind, method, expected = "read", "GET", 200
        path = f"/todos/{rng.choice(user.todos)}" if user.todos else "/users/me"
    elif roll < 0.90:
        kind, method, path, expected = "auth-failure", "GET", "/todos", 401
        headers = {"Authorization": rng.choice(["Bearer not-a-token", "Basic abc", "Bearer"])}
    else:
        method, path, kwargs, expected = rng.choice(INVALID)
        kwargs = dict(kwargs)
        headers = {**headers, **kwargs.pop("headers", {})}
        kind = "invalid"
    try:
        response = await client.request(method, path, headers=headers, **kwargs)
    except TRANSPORT_ERRORS as error:
        load.transport_errors[f"{kind}: {type(error).__name__}"] += 1
        return
    load.requests += 1
    seen = f"{method} {path[:60]} -> {response.status_code}: {response.text[:200]}"
    if response.status_code >= 500:
        load.answered_5xx.append(seen)
    if response.status_code != expected:
        load.unexpected.append(f"{seen} (expected {expected})")
    if response.status_code >= 400 and not is_envelope(response):
        load.not_envelope.append(seen)
    if kind == "create" and response.status_code == 201:
        todo_id = response.json()["data"]["id"]
        load.created[todo_id] = kwargs["json"]["title"]
        user.todos.append(todo_id)


async def register(client: httpx.AsyncClient, name: str) -> User:
    response = await client.post("/users", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    login = await client.post("/auth/token", data={"username": name, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return User(name, login.json()["access_token"], login.json()["refresh_token"])


async def run_load(base: str) -> Load:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        load = Load([await register(client, f"load{n}-{uuid.uuid4().hex[:6]}") for n in range(8)])
    stop_at = time.monotonic() + LOAD_SECONDS

    async def client_task(seed: int) -> None:
        # A connection of its own, reopened every 50 requests: the workers share one
        # listening socket, and long-lived connections would all stay with one worker.
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            async with httpx.AsyncClient(base_url=base, timeout=30) as own:
                for _ in range(50):
                    if time.monotonic() >= stop_at:
                        break
                    await one(own, rng.choice(load.users), load, rng)

    await asyncio.gather(*(client_task(n) for n in range(CONCURRENCY)))
    return load


@pytest.fixture(scope="module")
def load(app: App) -> Load:
    result = asyncio.run(run_load(app.base))
    result.busy = busy_connections()
    result.rows = rows_of(app.schema, result.users)
    return result


def test_no_request_gets_a_5xx_or_a_transport_error(load: Load) -> None:
    assert load.requests > 0
    assert load.answered_5xx == []
    assert not load.transport_errors


def test_every_answer_has_the_status_it_must_and_errors_are_envelopes(load: Load) -> None:
    assert load.unexpected == []
    assert load.not_envelope == []


def test_every_201_is_a_row_and_every_row_was_answered_201(load: Load) -> None:
    assert load.created
    assert load.rows == load.created  # no lost write, no phantom row, the title it was sent


def test_no_app_connection_is_left_busy_after_the_load(load: Load) -> None:
    assert load.busy == 0


# --- faults ----------------------------------------------------------------------------


@dataclass
class Faults:
    pg_down: Counter[tuple[int, bool]] = field(default_factory=Counter)  # (status, envelope)
    pg_down_health: int = 0
    pg_down_create: int = 0
    pg_recovered: bool = False
    redis_killed: str = ""
    redis_after_kill: Counter[tuple[int, bool]] = field(default_factory=Counter)
    redis_down: Counter[tuple[int, bool]] = field(default_factory=Counter)
    redis_recovered: bool = False
    logout: int = 0
    revoked_token: Counter[int] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)  # statuses of the writers' creates
    written: dict[int, str] = field(default_factory=dict)  # id -> title, answered 201
    titles: set[str] = field(default_factory=set)  # every title the writers sent
    busy: int = -1


async def poll(client: httpx.AsyncClient, user: User, seconds: float) -> Counter[Any]:
    """``GET /todos`` every 50 ms for ``seconds``: (status, in the envelope) or the error."""
    seen: Counter[Any] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            response = await client.get("/todos", headers=bearer(user))
            seen[response.status_code, is_envelope(response)] += 1
        except TRANSPORT_ERRORS as error:
            seen[type(error).__name__] += 1
        await asyncio.sleep(0.05)
    return seen


async def recovers(client: httpx.AsyncClient, user: User, timeout: float = 30) -> bool:
    """Whether ``GET /todos`` answers 200 again within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(*TRANSPORT_ERRORS):
            if (await client.get("/todos", headers=bearer(user))).status_code == 200:
                return True
        await asyncio.sleep(0.05)
    return False


async def writer(base: str, user: User, stop: asyncio.Event, faults: Faults) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while not stop.is_set():
            title = f"fault-{uuid.uuid4().hex}"
            faults.titles.add(title)
            try:
                response = await client.post("/todos", json={"title": title}, headers=bearer(user))
            except TRANSPORT_ERRORS as error:
                faults.writes[type(error).__name__] += 1
                continue
            faults.writes[str(response.status_code)] += 1
            if response.status_code == 201:
                faults.written[response.json()["data"]["id"]] = title
            await asyncio.sleep(0.02)


async def run_faults(base: str, users: list[User]) -> Faults:
    # users[0] polls, users[1] logs out at the end, users[2:6] keep writing all through.
    faults, stop, (user, victim) = Faults(), asyncio.Event(), users[:2]
    writers = asyncio.gather(*(writer(base, u, stop, faults) for u in users[2:6]))
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            pg_ctl("stop", "-m", "fast")
            faults.pg_down = await poll(client, user, 3.0)
            faults.pg_down_health = (await client.get("/health")).status_code
            create = await client.post("/todos", json={"title": "down"}, headers=bearer(user))
            faults.pg_down_create = create.status_code
            pg_start()
            faults.pg_recovered = await recovers(client, user)

            faults.redis_killed = redis_cli("client", "kill", "type", "normal")
            faults.redis_after_kill = await poll(client, user, 1.5)
            redis_stop()
            faults.redis_down = await poll(client, user, 3.0)
            redis_start()
            faults.redis_recovered = await recovers(client, user)

            logout = await client.post(
                "/auth/logout", json={"refresh_token": victim.refresh}, headers=bearer(victim)
            )
            faults.logout = logout.status_code
        for _ in range(12):  # new connections: the kernel spreads them over both workers
            async with httpx.AsyncClient(base_url=base, timeout=10) as fresh:
                response = await fresh.get("/todos", headers=bearer(victim))
                faults.revoked_token[response.status_code] += 1
    finally:
        stop.set()
        await writers
    return faults


@pytest.fixture(scope="module")
def faults(app: App, load: Load) -> Faults:
    try:
        result = asyncio.run(run_faults(app.base, load.users))
    finally:
        pg_start()
        redis_start()
    result.busy = busy_connections()
    return result


def test_postgres_down_answers_503_in_the_envelope_then_recovers(faults: Faults) -> None:
    assert set(faults.pg_down) == {(503, True)}  # never a 500, a hang or a bare error
    assert (faults.pg_down_health, faults.pg_down_create) == (503, 503)
    assert faults.pg_recovered


def test_requests_go_on_when_redis_connections_are_killed(faults: Faults) -> None:
    assert int(faults.redis_killed) > 0
    assert set(faults.redis_after_kill) == {(200, True)}


def test_token_checks_fail_closed_while_redis_is_down_then_recover(faults: Faults) -> None:
    assert set(faults.redis_down) == {(503, True)}  # never "valid"
    assert faults.redis_recovered


def test_a_logout_in_one_worker_is_honoured_by_the_other(faults: Faults) -> None:
    assert faults.logout == 200
    assert faults.revoked_token == Counter({401: 12})


def test_writes_through_the_faults_get_201_or_503_and_every_201_is_a_row(
    app: App, load: Load, faults: Faults
) -> None:
    assert set(faults.writes) <= {"201", "503"}
    assert faults.writes["201"] > 0
    assert faults.writes["503"] > 0  # the faults did bite
    rows = {i: t for i, t in rows_of(app.schema, load.users).items() if t in faults.titles}
    assert faults.written.items() <= rows.items()  # acknowledged means committed
    assert faults.busy == 0
