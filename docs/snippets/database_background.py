import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, FastAPI
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import setup
from fastkit.db import Database

db = Database(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))


class Base(DeclarativeBase):
    pass


class AuditEntry(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(100))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with db.lifespan(app):
        await db.create_all(Base.metadata)
        yield


app = FastAPI(lifespan=lifespan)
setup(app)


async def record(event: str) -> None:
    # Runs after the response: the request's session is already closed.
    # Open a scope of its own, with the same commit / rollback / close rules.
    async with db.session_scope() as session:
        session.add(AuditEntry(event=event))


@app.post("/orders", status_code=202)
async def place_order(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(record, "order placed")
    return {"status": "accepted"}
