"""examples/todo's rate limits: writes per user, sign-ups per client, failed logins.

On memory always, and on Redis (two apps standing for two workers) when its URL is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from examples.todo.main import create_app
from examples.todo.settings import Settings
from tests.examples.todo_support import NO_REDIS, REDIS_URL, base_env

PASSWORD = "correct horse"


@pytest.fixture(params=["memory", "redis"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    values = base_env(tmp_path)
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip(NO_REDIS)
        values["REDIS_URL"] = REDIS_URL
    values["WRITE_RATE_LIMIT"] = "3/minute"
    values["REGISTER_RATE_LIMIT"] = "4/minute"
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as client:
        yield client


def register(client: TestClient, username: str) -> None:
    response = client.post("/users", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text


def headers_for(client: TestClient, username: str) -> dict[str, str]:
    register(client, username)
    response = client.post("/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == 429
    assert body["message"].startswith("Too many requests")
    assert int(response.headers["Retry-After"]) >= 1
    assert "RateLimit" in response.headers


def test_writes_are_limited_per_user_and_reads_are_not(client: TestClient) -> None:
    alice = headers_for(client, "alice")
    bob = headers_for(client, "bob")
    created = client.post("/todos", json={"title": "one"}, headers=alice)
    assert created.status_code == 201
    assert created.headers["RateLimit-Policy"] == '"todo-writes-60s";q=3;w=60'
    assert created.headers["RateLimit"].startswith('"todo-writes-60s";r=2;')
    todo_id = created.json()["data"]["id"]
    # Creating, editing and deleting share one budget.
    assert client.patch(f"/todos/{todo_id}", json={"done": True}, headers=alice).status_code == 200
    assert client.delete(f"/todos/{todo_id}", headers=alice).status_code == 204
    refused = client.post("/todos", json={"title": "four"}, headers=alice)
    assert_rate_limited(refused)
    # Nothing was written by the refused request.
    listed = client.get("/todos", headers=alice)
    assert listed.status_code == 200
    assert listed.json()["data"]["total"] == 0
    assert "RateLimit" not in listed.headers  # reads are not limited
    # Another user has a budget of their own, from the same address.
    assert client.post("/todos", json={"title": "bob's"}, headers=bob).status_code == 201


def test_sign_ups_are_limited_per_client(client: TestClient) -> None:
    for name in ("user1", "user2", "user3", "user4"):
        register(client, name)
    assert_rate_limited(client.post("/users", json={"username": "user5", "password": PASSWORD}))
    # Nothing was created by the refused request.
    login = client.post("/auth/token", data={"username": "user5", "password": PASSWORD})
    assert login.json()["error"] == "invalid_grant"


def test_failed_logins_are_throttled_per_username(client: TestClient) -> None:
    register(client, "carol")
    for _ in range(10):
        wrong = client.post("/auth/token", data={"username": "carol", "password": "nope"})
        assert wrong.status_code == 400
    refused = client.post("/auth/token", data={"username": "carol", "password": PASSWORD})
    assert refused.status_code == 429
    assert refused.json()["error"] == "slow_down"
    assert int(refused.headers["Retry-After"]) >= 1


def test_the_budget_is_shared_by_workers_on_redis(env: dict[str, str]) -> None:
    if not env["REDIS_URL"]:
        pytest.skip("one process's memory is not shared; see the redis case")
    with (
        TestClient(create_app(Settings())) as first,
        TestClient(create_app(Settings())) as second,
    ):
        headers = headers_for(first, "dave")
        assert first.post("/todos", json={"title": "1"}, headers=headers).status_code == 201
        assert second.post("/todos", json={"title": "2"}, headers=headers).status_code == 201
        assert first.post("/todos", json={"title": "3"}, headers=headers).status_code == 201
        assert_rate_limited(second.post("/todos", json={"title": "4"}, headers=headers))


def test_openapi_documents_the_429s(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "429" in paths["/todos"]["post"]["responses"]
    assert "429" in paths["/todos/{todo_id}"]["patch"]["responses"]
    assert "429" in paths["/users"]["post"]["responses"]
    assert "429" not in paths["/todos"]["get"]["responses"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("WRITE_RATE_LIMIT", "lots"), ("REGISTER_RATE_LIMIT", "10/fortnight")],
    ids=["not-a-rate", "unknown-unit"],
)
def test_an_unreadable_limit_is_refused_at_startup(
    name: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="write it like"):
        Settings(_env_file=None, **{name.lower(): value})  # type: ignore[call-arg]


def test_an_empty_limit_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in base_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WRITE_RATE_LIMIT", "")
    with TestClient(create_app(Settings())) as client:
        headers = headers_for(client, "erin")
        for n in range(70):  # past the default 60 a minute
            response = client.post("/todos", json={"title": f"t{n}"}, headers=headers)
            assert response.status_code == 201
            assert "RateLimit" not in response.headers


def test_login_throttle_false_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in base_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOGIN_THROTTLE", "false")
    with TestClient(create_app(Settings())) as client:
        register(client, "frank")
        for _ in range(15):
            wrong = client.post("/auth/token", data={"username": "frank", "password": "no"})
            assert wrong.status_code == 400
