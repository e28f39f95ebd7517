import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import setup
from fastkit.db import Database, apaginate
from fastkit.pagination import CursorPage, CursorParams

db = Database(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))

# Every worker needs the same secret, or a cursor made by one is refused by another.
# The random fallback only suits a single process (and its cursors die with it).
CURSOR_SECRET = os.environ.get("CURSOR_SECRET") or secrets.token_hex(32)
SignedCursor = CursorParams.configure(default_size=10, max_size=50, secret=CURSOR_SECRET)


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime]
    name: Mapped[str] = mapped_column(String(100))


class EventOut(BaseModel):
    id: int
    at: dt.datetime
    name: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with db.lifespan(app):
        await db.create_all(Base.metadata)
        async with db.session_scope() as session:
            if await session.scalar(select(Event.id).limit(1)) is None:
                start = dt.datetime(2025, 1, 1, 9, 0)
                session.add_all(
                    Event(at=start + dt.timedelta(minutes=n), name=f"event {n}")
                    for n in range(1, 13)
                )
        yield


app = FastAPI(lifespan=lifespan)
setup(app)


@app.get("/events")
async def list_events(
    params: Annotated[SignedCursor, Query()], session: db.Session
) -> CursorPage[EventOut]:
    # Newest first; the tie-breaker written out too, so both keys go the same way.
    stmt = select(Event).order_by(Event.at.desc(), Event.id.desc())
    return await apaginate(session, stmt, params)
