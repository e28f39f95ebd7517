"""Real databases for tests: SQLite always, PostgreSQL when FASTKIT_TEST_POSTGRES_URL is set.

When the URL is set, an unreachable server fails the test (it never skips); without it,
PostgreSQL cases skip with a reason. Each PostgreSQL test gets its own schema, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ForeignKey, String, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

POSTGRES_URL = os.environ.get("FASTKIT_TEST_POSTGRES_URL")
NO_POSTGRES = (
    "FASTKIT_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
)


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(primary_key=True)


class Child(Base):
    __tablename__ = "child"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Deferred: a missing parent is only noticed at COMMIT (both PostgreSQL and SQLite).
    parent_id: Mapped[int] = mapped_column(
        ForeignKey("parent.id", deferrable=True, initially="DEFERRED")
    )
    name: Mapped[str] = mapped_column(String(50), unique=True)


@dataclass
class Target:
    """Where a test's database lives: URLs for the async and sync engines plus options."""

    kind: str  # "sqlite" or "postgres"
    async_url: str
    sync_url: str
    async_kwargs: dict[str, Any]
    sync_kwargs: dict[str, Any]


def _postgres_sync_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _postgres_async_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@contextmanager
def database_target(kind: str, directory: Path) -> Iterator[Target]:
    """An empty database: a SQLite file in ``directory``, or a fresh PostgreSQL schema.

    PostgreSQL skips without FASTKIT_TEST_POSTGRES_URL; with it, an unreachable server fails.
    The schema is dropped afterwards.
    """
    if kind == "sqlite":
        path = directory / "test.db"
        yield Target("sqlite", f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}", {}, {})
        return
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    schema = f"fk_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_postgres_sync_url(POSTGRES_URL))
    # No try/skip here: with the URL set, an unreachable server must fail the test.
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Target(
            "postgres",
            _postgres_async_url(POSTGRES_URL),
            _postgres_sync_url(POSTGRES_URL),
            {"connect_args": {"server_settings": {"search_path": schema}}},
            {"connect_args": {"options": f"-csearch_path={schema}"}},
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    with database_target(request.param, tmp_path) as database:
        yield database
