"""The app under test and its database, for fastkit.testing's ``client`` and ``db_session``
fixtures (the plugin is loaded by installing fastkit; ``pytest -p fastkit.testing`` loads it
explicitly)."""

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from examples.todo.main import create_app
from examples.todo.settings import Settings
from fastkit.db import Database

DEMO_PASSWORD = "demo-password-for-tests"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A database file of the test run's own, a fixed secret, cheap password hashing; no
    .env file and no Redis, whatever the developer's environment says."""
    database = Path(tmp_path_factory.mktemp("db")) / "test.db"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{database}",
        database_schema=None,
        redis_url=None,
        jwt_secret="test-secret-0123456789-0123456789-0123456789",  # type: ignore[arg-type]
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        demo_username="demo",
        demo_password=DEMO_PASSWORD,  # type: ignore[arg-type]
        log_level=None,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def database(app: FastAPI) -> Database:
    db: Database = app.state.services.db
    return db


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    """The Authorization header of a fresh access token, through the login endpoint."""
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def user(client: TestClient, db_session: object) -> dict[str, str]:
    """A registered user's Authorization header; the user is gone after the test."""
    response = client.post("/users", json={"username": "ann", "password": "correct horse"})
    assert response.status_code == 201, response.text
    return login(client, "ann", "correct horse")
