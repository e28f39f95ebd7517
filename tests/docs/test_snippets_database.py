"""What docs/database.md claims, run against its snippets on real SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from tests.docs._snippets import load


@pytest.fixture
def snippet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The snippets read their URL from the environment, as the page recommends.
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("SYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'sync.db'}")
    return tmp_path


def run(module: ModuleType) -> Iterator[TestClient]:
    with TestClient(module.app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def app_client(snippet_env: Path) -> Iterator[TestClient]:
    yield from run(load("database_app"))


def test_create_commits_before_201(app_client: TestClient) -> None:
    created = app_client.post("/users", json={"email": "ann@example.com"})
    assert created.status_code == 201
    assert created.json() == {"id": 1, "email": "ann@example.com"}
    read = app_client.get("/users/1")
    assert read.status_code == 200
    assert read.json()["email"] == "ann@example.com"


def test_duplicate_is_the_documented_409(app_client: TestClient) -> None:
    assert app_client.post("/users", json={"email": "dup@example.com"}).status_code == 201
    response = app_client.post("/users", json={"email": "dup@example.com"})
    assert response.status_code == 409
    body = {"code": 409, "message": "The request conflicts with existing data", "data": None}
    assert response.json() == body


def test_missing_user_and_health(app_client: TestClient) -> None:
    assert app_client.get("/users/9").json() == {
        "code": 404,
        "message": "User not found",
        "data": None,
    }
    assert app_client.get("/health").json() == {"database": True}


def test_unavailable_is_the_documented_503(
    snippet_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = snippet_env / "no" / "such" / "dir" / "app.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{missing}")
    module = load("database_app")
    # Start without the lifespan (create_all would fail first): the request path itself.
    client = TestClient(module.app, raise_server_exceptions=False)
    response = client.get("/users/1")
    assert response.status_code == 503
    body = {"code": 503, "message": "Database unavailable", "data": None}
    assert response.json() == body
    assert client.get("/health").json() == {"database": False}


def test_background_task_writes_in_its_own_scope(snippet_env: Path) -> None:
    module = load("database_background")
    with TestClient(module.app) as client:
        assert client.post("/orders").status_code == 202

        async def events() -> list[str]:
            from sqlalchemy import select

            async with module.db.session_scope() as session:
                return list(await session.scalars(select(module.AuditEntry.event)))

        assert client.portal.call(events) == ["order placed"]  # type: ignore[union-attr]


def test_typed_alias_is_the_same_dependency() -> None:
    module = load("database_typed")
    assert module.SessionDep.__metadata__[0] is module.db.depends
    assert module.db.depends.scope == "function"
    assert module.SameThing.__metadata__[0].scope == "function"
    with TestClient(module.app) as client:
        assert client.get("/answer").json() == 42


def test_sync_snippet(snippet_env: Path) -> None:
    module = load("database_sync")
    with TestClient(module.app) as client:
        assert client.post("/notes", params={"text": "a"}).json() == {"count": 1}
        assert client.post("/notes", params={"text": "b"}).json() == {"count": 2}
    assert (snippet_env / "sync.db").exists()
