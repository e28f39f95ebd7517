"""Where the todo example's tests keep their data: SQLite always, PostgreSQL and Redis when
``FASTKIT_TEST_POSTGRES_URL`` / ``FASTKIT_TEST_REDIS_URL`` are set.

With a URL set, an unreachable server fails the test (it never skips). Each PostgreSQL run
gets its own schema (the app's ``DATABASE_SCHEMA``), dropped after, so runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("FASTKIT_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")
NO_POSTGRES = (
    "FASTKIT_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
)
NO_REDIS = "FASTKIT_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)"

JWT_SECRET = "test-secret-for-the-todo-example-0123456789"
DEMO_PASSWORD = "demo-password-1"


def base_env(tmp_path: Path) -> dict[str, str]:
    """The app's environment: SQLite in ``tmp_path``, a fixed secret, cheap argon2."""
    return {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}",
        "DATABASE_SCHEMA": "",
        "REDIS_URL": "",
        # Each app its own Redis keys: rate limits keyed by user id must not carry over.
        "REDIS_PREFIX": f"todo-test:{uuid.uuid4().hex}:",
        "JWT_SECRET": JWT_SECRET,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "DEMO_USERNAME": "demo",
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "LOG_LEVEL": "",
    }


@contextmanager
def postgres_schema(*, create: bool = True) -> Iterator[dict[str, str]]:
    """A fresh schema in the test database (``create=False``: left for the app to create);
    the env that points the app at it. Dropped afterwards."""
    assert POSTGRES_URL is not None
    sync_url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    async_url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg")
    schema = f"todo_{uuid.uuid4().hex[:12]}"
    admin = create_engine(sync_url)
    if create:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield {
            "DATABASE_URL": async_url.render_as_string(hide_password=False),
            "DATABASE_SCHEMA": schema,
        }
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
