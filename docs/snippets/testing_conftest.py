import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from fastkit import setup
from fastkit.db import Database

pytest_plugins = ["fastkit.testing"]  # the client and db_session fixtures


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


# No pool in tests: each TestClient runs the app on an event loop of its own, and a
# pooled connection belongs to the loop that opened it.
db = Database("sqlite+aiosqlite:///./test.db", poolclass=NullPool)
asyncio.run(db.create_all(Base.metadata))


def make_app() -> FastAPI:
    app = FastAPI()
    setup(app)

    @app.post("/notes/{text}", status_code=201)
    async def add_note(text: str, session: db.Session) -> str:
        session.add(Note(text=text))
        return text

    @app.get("/notes")
    async def notes(session: db.Session) -> list[str]:
        return list(await session.scalars(select(Note.text)))

    return app


@pytest.fixture
def app() -> FastAPI:
    return make_app()


@pytest.fixture
def database() -> Database:
    return db
