"""Reliability run: the todo example on two uvicorn workers, PostgreSQL and Redis, under a
bounded mixed load, then with PostgreSQL stopped and Redis stopped mid-run.

    hatch run bench:reliability                      # ~2 min; stops and restarts PG and Redis
    hatch run bench:reliability --skip-faults        # only the load
    hatch run bench:reliability --duration 20 --max-requests 5000

What it checks and reports (and writes to ``results/reliability.md``, which
``docs/reliability.md`` includes):

- load: ``--concurrency`` clients for ``--duration`` seconds or ``--max-requests``, mixing
  creates, page and cursor lists, reads, auth failures and ~10% invalid requests, each
  with the status it must get; zero 5xx on valid requests; every 201 is a row in the
  database and every row of the run's users was answered 201 (no lost or phantom
  writes); no connection of the app checked out or in a transaction at the end
  (``pg_stat_activity``); each worker's RSS before and after;
- PostgreSQL stopped (``pg_ctlcluster ... stop -m fast``): requests answer 503 in the
  envelope ("Database unavailable"), never 500 or a hang; after ``start``, the time until
  requests succeed again; four clients keep creating todos through every fault, and every
  201 among them must be a row too;
- Redis connections killed (``CLIENT KILL TYPE normal``): requests go on (redis-py
  reconnects); Redis stopped: token checks fail closed (503, never "valid"); after a
  restart, requests succeed again and a logout in one worker is honoured by the other.

It needs root (to stop and start the services) and the services of ``.ci/run``; it runs
only against 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
from _results import RESULTS, write_section
from _servers import HOST, free_port, stop_process
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get(
    "FASTKIT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROLE = "fastkit_reliability"  # the app's database user: its connections, in pg_stat_activity
SECRET = "reliability-secret-0123456789abcdef-0123456789"
PASSWORD = "reliability-pass-1"


# --- services ------------------------------------------------------------------------------


def pg_cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", HOST, "-p", "5432"]).returncode == 0


def pg_stop() -> None:
    subprocess.run([*pg_cluster(), "stop", "-m", "fast"], check=True)


def pg_start() -> None:
    if not pg_ready():
        subprocess.run([*pg_cluster(), "start"], check=True)
    for _ in range(60):
        if pg_ready():
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come back")


def redis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["redis-cli", "-h", HOST, "-p", "6379", *args], capture_output=True, text=True
    )


def redis_ready() -> bool:
    return redis_cli("ping").stdout.strip() == "PONG"


def redis_stop() -> None:
    redis_cli("shutdown", "nosave")
    for _ in range(40):
        if not redis_ready():
            return
        time.sleep(0.25)
    raise RuntimeError("Redis did not stop")


def redis_start() -> None:
    if not redis_ready():
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
        if redis_ready():
            return
        time.sleep(0.25)
    raise RuntimeError("Redis did not come back")


# --- the app -------------------------------------------------------------------------------


@dataclass
class App:
    schema: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Any = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"


def sync_engine() -> Any:
    return create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"))


def create_schema() -> str:
    """A fresh schema with the example's tables (made here, not by two racing workers)."""
    from examples.todo.models import Base

    schema = f"reliability_{uuid.uuid4().hex[:10]}"
    engine = sync_engine()
    with engine.begin() as connection:
        # Trust auth on the local test server: a role of its own, only to tell the app's
        # connections apart from everyone else's.
        exists = connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}
        ).first()
        if not exists:
            connection.execute(text(f"CREATE ROLE {ROLE} LOGIN SUPERUSER"))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text(f'SET search_path TO "{schema}"'))
        Base.metadata.create_all(connection)
    engine.dispose()
    return schema


def drop_schema(schema: str) -> None:
    engine = sync_engine()
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def start_app(app: App, workers: int) -> None:
    app.port = free_port()
    app.log = tempfile.TemporaryFile()  # noqa: SIM115 -- open for the server's life
    url = make_url(PG_URL).set(username=ROLE)
    env = {
        **os.environ,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "DATABASE_SCHEMA": app.schema,
        "REDIS_URL": REDIS_URL,
        "JWT_SECRET": SECRET,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "DEMO_USERNAME": "",
        "LOG_LEVEL": "WARNING",
    }
    app.process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "examples.todo.main:app",
            "--host", HOST, "--port", str(app.port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log",
        ],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=app.log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_app(app: App) -> None:
    stop_process(app.process, timeout=15)


def app_log(app: App) -> str:
    app.log.seek(0)
    return str(app.log.read().decode(errors="replace"))


def worker_pids(app: App) -> list[int]:
    assert app.process is not None
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                # uvicorn's workers (spawned); not multiprocessing's resource tracker.
                if ppid == app.process.pid and b"spawn_main" in cmdline:
                    pids.append(int(entry))
    return sorted(pids)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def app_connections() -> tuple[int, int]:
    """The app's connections running a query or in a transaction, and all it has open."""
    engine = sync_engine()
    with engine.connect() as connection:
        busy, total = connection.execute(
            text(
                "SELECT count(*) FILTER (WHERE state IS DISTINCT FROM 'idle'), count(*) "
                "FROM pg_stat_activity WHERE usename = :name"
            ),
            {"name": ROLE},
        ).one()
    engine.dispose()
    return int(busy), int(total)


# --- load ----------------------------------------------------------------------------------


@dataclass
class User:
    name: str
    token: str
    refresh: str
    todos: list[int] = field(default_factory=list)


@dataclass
class Tally:
    requests: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    valid_5xx: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # transport errors, timeouts
    created: dict[int, str] = field(default_factory=dict)  # id -> title answered 201
    not_envelope: int = 0
    rss_warm: dict[int, float] = field(default_factory=dict)  # after a quarter of the run


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


async def one(client: httpx.AsyncClient, user: User, tally: Tally, rng: random.Random) -> None:
    roll = rng.random()
    headers = {"Authorization": f"Bearer {user.token}"}
    kwargs: dict[str, Any] = {}
    if roll < 0.35:
        kind, method, path, expected = "create", "POST", "/todos", 201
        title = f"todo-{uuid.uuid4().hex}"
        kwargs = {"json": {"title": title}}
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
    except (httpx.TransportError, asyncio.TimeoutError) as error:
        tally.errors[f"{kind}: {type(error).__name__}"] += 1
        return
    tally.requests += 1
    tally.by_kind[kind] += 1
    tally.statuses[(kind, response.status_code)] += 1
    if response.status_code != expected and len(tally.unexpected) < 20:
        tally.unexpected.append(
            f"{method} {path[:60]} -> {response.status_code} (expected {expected}): "
            f"{response.text[:200]}"
        )
    if response.status_code >= 500 and kind != "invalid" and kind != "auth-failure":
        tally.valid_5xx += 1
    if response.status_code >= 400 and not is_envelope(response):
        tally.not_envelope += 1
    if kind == "create" and response.status_code == 201:
        todo_id = response.json()["data"]["id"]
        tally.created[todo_id] = kwargs["json"]["title"]
        user.todos.append(todo_id)


async def register(client: httpx.AsyncClient, name: str) -> User:
    response = await client.post("/users", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    login = await client.post("/auth/token", data={"username": name, "password": PASSWORD})
    assert login.status_code == 200, login.text
    body = login.json()
    return User(name, body["access_token"], body["refresh_token"])


async def wait_healthy(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError("the app did not become healthy")


async def run_load(app: App, args: argparse.Namespace) -> tuple[Tally, list[User], float]:
    async with httpx.AsyncClient(base_url=app.base, timeout=30) as client:
        users = [await register(client, f"load{n}-{uuid.uuid4().hex[:6]}") for n in range(8)]
        tally = Tally()
        stop_at = time.monotonic() + args.duration
        started = time.monotonic()

        async def worker(seed: int) -> None:
            # A connection of its own, reopened every 50 requests: the workers share one
            # listening socket, and long-lived connections would all stay with one worker.
            rng = random.Random(seed)
            while time.monotonic() < stop_at and tally.requests < args.max_requests:
                async with httpx.AsyncClient(base_url=app.base, timeout=30) as own:
                    for _ in range(50):
                        if time.monotonic() >= stop_at or tally.requests >= args.max_requests:
                            break
                        await one(own, rng.choice(users), tally, rng)

        async def sample_rss() -> None:
            # After a quarter of the run (warm: caches, pools, imports done) and at the end.
            await asyncio.sleep(args.duration / 4)
            tally.rss_warm = {pid: rss_mib(pid) for pid in worker_pids(app)}

        sampler = asyncio.create_task(sample_rss())
        await asyncio.gather(*(worker(n) for n in range(args.concurrency)))
        if not sampler.done():
            sampler.cancel()
        return tally, users, time.monotonic() - started


def rows_of(schema: str, users: list[User]) -> dict[int, str]:
    engine = sync_engine()
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                f'SELECT t.id, t.title FROM "{schema}".todo_items t '
                f'JOIN "{schema}".todo_users u ON u.id = t.owner_id WHERE u.username = ANY(:names)'
            ),
            {"names": [u.name for u in users]},
        ).all()
    engine.dispose()
    return {int(r[0]): str(r[1]) for r in rows}


# --- faults --------------------------------------------------------------------------------


async def poll(
    client: httpx.AsyncClient, token: str, seconds: float, path: str = "/todos"
) -> Counter[str]:
    """GET ``path`` every 50 ms for ``seconds``: statuses, each with its message."""
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            label = str(response.status_code)
            if response.status_code >= 400:
                label += (
                    f" {response.json().get('message')!r}"
                    if is_envelope(response)
                    else " (not an envelope)"
                )
        except (httpx.TransportError, asyncio.TimeoutError) as error:
            label = type(error).__name__
        seen[label] += 1
        await asyncio.sleep(0.05)
    return seen


async def until_ok(client: httpx.AsyncClient, token: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.TransportError, asyncio.TimeoutError):
            response = await client.get("/todos", headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 200:
                return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise RuntimeError("requests did not succeed again")


@dataclass
class FaultWrites:
    """Creates sent all through the faults: what they got, and what each 201 created."""

    statuses: Counter[str] = field(default_factory=Counter)
    created: dict[int, str] = field(default_factory=dict)  # id -> title, answered 201
    refused: dict[str, str] = field(default_factory=dict)  # title -> the error answered


async def background_writes(
    app: App, users: list[User], stop: asyncio.Event, writes: FaultWrites
) -> None:
    async def writer(user: User) -> None:
        async with httpx.AsyncClient(base_url=app.base, timeout=10) as client:
            while not stop.is_set():
                title = f"fault-{uuid.uuid4().hex}"
                try:
                    response = await client.post(
                        "/todos",
                        json={"title": title},
                        headers={"Authorization": f"Bearer {user.token}"},
                    )
                except (httpx.TransportError, asyncio.TimeoutError) as error:
                    writes.statuses[type(error).__name__] += 1
                    writes.refused[title] = type(error).__name__
                    continue
                writes.statuses[str(response.status_code)] += 1
                if response.status_code == 201:
                    writes.created[response.json()["data"]["id"]] = title
                else:
                    writes.refused[title] = str(response.status_code)
                await asyncio.sleep(0.02)

    await asyncio.gather(*(writer(user) for user in users))


async def run_faults(app: App, users: list[User]) -> dict[str, Any]:
    # users[1] logs out at the end; the others keep writing through every fault.
    writes = FaultWrites()
    stop = asyncio.Event()
    writing = asyncio.create_task(background_writes(app, users[2:6], stop, writes))
    try:
        out = await _faults(app, users)
    finally:
        stop.set()
        await writing
    out["writes"] = writes
    return out


async def _faults(app: App, users: list[User]) -> dict[str, Any]:
    token = users[0].token
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=app.base, timeout=10) as client:
        # PostgreSQL stopped.
        pg_stop()
        out["pg_down"] = await poll(client, token, 3.0)
        out["pg_down_health"] = (await client.get("/health")).status_code
        out["pg_down_create"] = (
            await client.post(
                "/todos",
                json={"title": "during outage"},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).status_code
        pg_start()
        out["pg_recovery_s"] = await until_ok(client, token)
        # Redis: connections killed, then the server stopped.
        killed = redis_cli("client", "kill", "type", "normal").stdout.strip()
        out["redis_killed"] = killed
        out["redis_after_kill"] = await poll(client, token, 1.5)
        redis_stop()
        out["redis_down"] = await poll(client, token, 3.0)
        redis_start()
        out["redis_recovery_s"] = await until_ok(client, token)
        # A logout in one worker is honoured by the other (the revocation is in Redis).
        victim = users[1]
        logout = await client.post(
            "/auth/logout",
            json={"refresh_token": victim.refresh},
            headers={"Authorization": f"Bearer {victim.token}"},
        )
        out["logout"] = logout.status_code
        after = Counter()
        for _ in range(12):  # new connections: the load balancer of the OS picks a worker
            async with httpx.AsyncClient(base_url=app.base, timeout=10) as fresh:
                response = await fresh.get(
                    "/todos", headers={"Authorization": f"Bearer {victim.token}"}
                )
                after[response.status_code] += 1
        out["revoked_token"] = after
    return out


# --- report --------------------------------------------------------------------------------


def fmt_counter(counter: Counter[Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(counter.items(), key=str)) or "none"


def render(
    args: argparse.Namespace,
    tally: Tally,
    elapsed: float,
    rows: dict[int, str],
    rss: dict[int, tuple[float, float]],
    busy: int,
    connections: int,
    faults: dict[str, Any] | None,
) -> tuple[str, bool]:
    writes: FaultWrites = faults["writes"] if faults is not None else FaultWrites()
    fault_titles = set(writes.created.values()) | set(writes.refused)
    load_rows = {i: t for i, t in rows.items() if t not in fault_titles}
    lost = sorted(set(tally.created) - set(load_rows))
    phantom = sorted(set(load_rows) - set(tally.created))
    wrong_title = [i for i in tally.created if i in rows and rows[i] != tally.created[i]]
    ok = not (tally.valid_5xx or lost or phantom or wrong_title or busy or tally.not_envelope)
    lines = [
        "## Load and faults (two uvicorn workers, PostgreSQL, Redis)",
        "",
        f"`python bench/reliability.py --duration {args.duration} --concurrency "
        f"{args.concurrency} --max-requests {args.max_requests}`: the todo example "
        f"(`uvicorn examples.todo.main:app --workers {args.workers}`) on PostgreSQL (its own "
        "schema) and Redis (revocations), 8 users, each request with the status it must get.",
        "",
        "| load | figure |",
        "| --- | ---: |",
        f"| requests | {tally.requests:,} in {elapsed:.0f} s ({tally.requests / elapsed:,.0f}/s) |",
        f"| by kind | {fmt_counter(tally.by_kind)} |",
        f"| 5xx on valid requests | **{tally.valid_5xx}** |",
        f"| answers not as expected | {sum(1 for _ in tally.unexpected)} |",
        f"| 4xx not in the envelope | {tally.not_envelope} |",
        f"| transport errors | {fmt_counter(tally.errors)} |",
        f"| 201 answers / rows they made | {len(tally.created):,} / {len(load_rows):,} |",
        f"| lost writes (201, no row) / phantom rows (row, no 201) | **{len(lost)} / {len(phantom)}** |",  # noqa: E501
        f"| app connections busy at the end (`pg_stat_activity`, not idle) | **{busy}** of {connections} open |",  # noqa: E501
    ]  # fmt: skip
    for pid, (before, after) in rss.items():
        warm = tally.rss_warm.get(pid, float("nan"))
        lines.append(
            f"| worker {pid} RSS: idle / after a quarter of the run / at the end "
            f"| {before:.1f} / {warm:.1f} / {after:.1f} MiB |"
        )
    lines += [
        "",
        "Statuses by kind: "
        + fmt_counter(Counter({f"{k} {s}": n for (k, s), n in tally.statuses.items()})),
    ]
    if tally.unexpected:
        lines += ["", "Unexpected answers (first 20):", ""] + [f"- `{u}`" for u in tally.unexpected]
    if faults is not None:
        fault_rows = {i: t for i, t in rows.items() if t in fault_titles}
        fault_lost = sorted(set(writes.created) - set(fault_rows))
        refused_committed = sorted(t for t in fault_rows.values() if t in writes.refused)
        odd = {k: n for k, n in writes.statuses.items() if k not in ("201", "503")}
        pg_down = faults["pg_down"]
        redis_down = faults["redis_down"]
        fault_ok = (
            all(key.startswith("503") for key in pg_down)
            and faults["pg_down_health"] == 503
            and faults["pg_down_create"] == 503
            and all(key.startswith("503") for key in redis_down)
            and faults["revoked_token"] == Counter({401: 12})
            and all(key == "200" for key in faults["redis_after_kill"])
            and not fault_lost
            and not odd
            and faults["busy_after"] == 0
        )
        ok = ok and fault_ok
        lines += [
            "",
            "| fault | what the clients got |",
            "| --- | --- |",
            f"| PostgreSQL stopped (3 s of `GET /todos`) | {fmt_counter(pg_down)} |",
            f"| ... `GET /health`, `POST /todos` meanwhile | {faults['pg_down_health']}, {faults['pg_down_create']} |",  # noqa: E501
            f"| PostgreSQL started: first 200 after | {faults['pg_recovery_s']:.1f} s |",
            f"| Redis `CLIENT KILL TYPE normal` ({faults['redis_killed']} killed), 1.5 s after | {fmt_counter(faults['redis_after_kill'])} |",  # noqa: E501
            f"| Redis stopped (3 s of `GET /todos`) | {fmt_counter(redis_down)} |",
            f"| Redis started: first 200 after | {faults['redis_recovery_s']:.1f} s |",
            f"| logout ({faults['logout']}), then the token on 12 new connections (both workers) | {fmt_counter(faults['revoked_token'])} |",  # noqa: E501
            f"| creates sent all through the faults (4 clients) | {fmt_counter(writes.statuses)} |",
            f"| ... rows they made / 201s without a row / errors answered for a committed row | {len(fault_rows)} / **{len(fault_lost)}** / {len(refused_committed)} |",  # noqa: E501
            f"| app connections busy after the faults | **{faults['busy_after']}** |",
        ]  # fmt: skip
    lines += ["", f"**Result: {'every check held' if ok else 'A CHECK FAILED'}**"]
    return "\n".join(lines), ok


async def main_async(args: argparse.Namespace) -> int:
    pg_start()
    redis_start()
    schema = create_schema()
    app = App(schema)
    try:
        start_app(app, args.workers)
        try:
            await wait_healthy(app.base)
        except RuntimeError:
            print(app_log(app)[-4000:], file=sys.stderr)
            raise
        await asyncio.sleep(1.0)
        pids = worker_pids(app)
        before = {pid: rss_mib(pid) for pid in pids}
        tally, users, elapsed = await run_load(app, args)
        await asyncio.sleep(1.0)  # let the last responses' cleanups finish
        after = {pid: rss_mib(pid) for pid in pids}
        busy, connections = app_connections()
        faults = None if args.skip_faults else await run_faults(app, users)
        if faults is not None:
            await asyncio.sleep(1.0)
            faults["busy_after"] = app_connections()[0]
        rows = rows_of(schema, users)
        report, ok = render(
            args,
            tally,
            elapsed,
            rows,
            {pid: (before[pid], after.get(pid, float("nan"))) for pid in pids},
            busy,
            connections,
            faults,
        )
        print(report)
        if not ok:
            print(app_log(app)[-4000:], file=sys.stderr)
        if args.write:
            write_section(
                "run",
                report,
                RESULTS.parent / "reliability.md",
                title="# Reliability run\n\nGenerated by `bench/reliability.py`; see "
                "`bench/README.md`.\n",
            )
        return 0 if ok else 1
    finally:
        stop_app(app)
        pg_start()
        redis_start()
        drop_schema(schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and not args.skip_faults:
        parser.error(
            "the fault part stops and starts PostgreSQL and Redis: run as root, or --skip-faults"
        )
    sys.path.insert(0, str(ROOT))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
