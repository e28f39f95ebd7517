"""examples/todo behind a real uvicorn, driven over real HTTP through a whole session.

SQLite in a temporary directory always; PostgreSQL and Redis too when
``FASTKIT_TEST_POSTGRES_URL`` and ``FASTKIT_TEST_REDIS_URL`` are set.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests import uvicorn_support
from tests.examples.todo_support import (
    NO_POSTGRES,
    NO_REDIS,
    POSTGRES_URL,
    REDIS_URL,
    base_env,
    postgres_schema,
)
from tests.uvicorn_support import free_port, uvicorn_process

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

STARTUP_TIMEOUT = 20.0
LOG_TIMEOUT = 5.0


class Server(uvicorn_support.Server):
    def wait_for_log(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + LOG_TIMEOUT
        while (match := re.search(pattern, self.log())) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"{pattern!r} not in the server output:\n{self.log()}")
            time.sleep(0.05)
        return match


@pytest.fixture(scope="module", params=["sqlite", "postgres-redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("todo")
    env = {**os.environ, **base_env(workdir), "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    env.pop("DEMO_PASSWORD")  # a random one, read from the log below
    with ExitStack() as stack:
        if request.param == "postgres-redis":
            if not POSTGRES_URL:
                pytest.skip(NO_POSTGRES)
            if not REDIS_URL:
                pytest.skip(NO_REDIS)
            env.update(stack.enter_context(postgres_schema()))
            env["REDIS_URL"] = REDIS_URL
        port = free_port()
        server = Server(f"http://127.0.0.1:{port}", workdir / "out.log")
        args = ["examples.todo.main:app", "--no-access-log", "--host", "127.0.0.1"]
        # cwd: the repository root, as in the README; the database is in workdir.
        stack.enter_context(
            uvicorn_process(
                [*args, "--port", str(port), "--log-level", "warning"],
                log_path=server.log_path,
                ready_url=f"{server.base_url}/health",
                env=env,
                startup_timeout=STARTUP_TIMEOUT,
            )
        )
        yield server


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def data(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["message"]) == (status, "success")
    return body["data"]


def flip_last(cursor: str) -> str:
    """The cursor with its signature's last character changed."""
    return cursor[:-1] + ("A" if cursor[-1] != "A" else "B")


def test_demo_user_from_the_log_can_log_in(http: httpx.Client, server: Server) -> None:
    match = server.wait_for_log(r"Created the demo user: username 'demo', password (\S+)")
    response = http.post("/auth/token", data={"username": "demo", "password": match[1]})
    assert response.status_code == 200
    me = http.get("/users/me", headers=bearer(response.json()["access_token"]))
    assert data(me)["username"] == "demo"


def test_full_session(http: httpx.Client, server: Server) -> None:
    credentials = {"username": "e2e-user", "password": "a long enough password"}
    user = data(http.post("/users", json=credentials), 201)
    assert user["scopes"] == ["todos:read", "todos:write"]

    login = http.post("/auth/token", data=credentials)
    assert login.status_code == 200
    tokens = login.json()
    headers = bearer(tokens["access_token"])
    assert data(http.get("/users/me", headers=headers)) == user

    titles = [f"todo {n:02d}" for n in range(30)]
    ids = [data(http.post("/todos", json={"title": t}, headers=headers), 201)["id"] for t in titles]
    done = data(http.patch(f"/todos/{ids[0]}", json={"done": True}, headers=headers))
    assert done["done"] is True

    # Numbered pages, oldest first: 7 a page, the last one short.
    seen = []
    for page_number in range(1, 6):
        page = data(
            http.get(
                "/todos",
                params={"page": page_number, "page_size": 7, "sort": "created_at"},
                headers=headers,
            )
        )
        assert (page["total"], page["pages"], page["page"]) == (30, 5, page_number)
        seen += [todo["id"] for todo in page["items"]]
    assert seen == ids

    # Cursor pages by title, descending, 8 at a time, then one step back.
    cursor, pages = None, []
    while True:
        params: dict[str, Any] = {"size": 8, "sort": "-title"}
        if cursor is not None:
            params["cursor"] = cursor
        page = data(http.get("/todos/feed", params=params, headers=headers))
        pages.append(page)
        if (cursor := page["next_cursor"]) is None:
            break
    assert [len(p["items"]) for p in pages] == [8, 8, 8, 6]
    assert [t["title"] for p in pages for t in p["items"]] == sorted(titles, reverse=True)
    back = data(
        http.get(
            "/todos/feed",
            params={"size": 8, "sort": "-title", "cursor": pages[-1]["previous_cursor"]},
            headers=headers,
        )
    )
    assert back["items"] == pages[-2]["items"]

    tampered = http.get(
        "/todos/feed",
        params={"sort": "-title", "cursor": flip_last(pages[0]["next_cursor"])},
        headers=headers,
    )
    assert tampered.status_code == 400

    # Refresh: a new pair; the used refresh token is spent.
    refreshed = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new_tokens = refreshed.json()
    new_headers = bearer(new_tokens["access_token"])
    assert data(http.get(f"/todos/{ids[1]}", headers=new_headers))["title"] == "todo 01"

    # Logout ends the login: the new and the old access token are refused.
    logout = http.post("/auth/logout", headers=new_headers)
    assert logout.json() == {"code": 200, "message": "Logged out", "data": None}
    for stale in (new_headers, headers):
        refused = http.get("/todos", headers=stale)
        assert refused.status_code == 401
        assert refused.json() == {"code": 401, "message": "Invalid or expired token", "data": None}
    again = http.post("/auth/refresh", json={"refresh_token": new_tokens["refresh_token"]})
    assert again.status_code == 401

    # The server logged the refused token's reason with the request's id.
    request_id = refused.headers["x-request-id"]
    server.wait_for_log(rf"INFO fastkit.auth \[{request_id}\] Token refused: revoked")
    # A fresh login works again.
    assert http.post("/auth/token", data=credentials).status_code == 200


def test_health_and_headers(http: httpx.Client) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    assert {name: result[0]["status"] for name, result in response.json()["checks"].items()} in (
        {"database": "pass"},
        {"database": "pass", "redis": "pass"},  # the postgres-redis run
    )
    assert http.get("/health/live").json() == {"status": "pass"}
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert "x-process-time" in response.headers


def test_two_workers_without_redis_warn_that_logouts_are_per_worker(tmp_path: Path) -> None:
    """``uvicorn --workers 2``: each spawned worker sees the parent's ``--workers 2``."""
    env = {**os.environ, **base_env(tmp_path), "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    env.pop("WEB_CONCURRENCY", None)  # the command line alone says how many
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", tmp_path / "out.log")
    args = ["examples.todo.main:app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", "2", "--no-access-log", "--log-level", "warning"]
    warning = r"WARNING todo \[[^\]]*\] REDIS_URL is not set and 2 workers serve the app"
    with uvicorn_process(
        args,
        log_path=server.log_path,
        ready_url=f"{server.base_url}/health",
        env=env,
        startup_timeout=STARTUP_TIMEOUT,
    ):
        # The second worker may start after the first has answered /health.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(re.findall(warning, server.log())) < 2:  # one line from each worker
            if time.monotonic() > deadline:
                pytest.fail(f"{warning!r} not twice in the server output:\n{server.log()}")
            time.sleep(0.05)
    assert "logouts are kept in this process only" not in server.log()
