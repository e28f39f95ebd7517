import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import NotFound, setup
from fastkit.db import Database

# SQLite by default; PostgreSQL with e.g.
# DATABASE_URL=postgresql+asyncpg://app:secret@127.0.0.1:5432/app
db = Database(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)


class UserIn(BaseModel):
    email: str


class UserOut(BaseModel):
    id: int
    email: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with db.lifespan(app):  # disposes the pool at shutdown
        await db.create_all(Base.metadata)  # demos and tests; use migrations in production
        yield


app = FastAPI(lifespan=lifespan)
setup(app)


@app.post("/users", status_code=201)
async def create_user(body: UserIn, session: db.Session) -> UserOut:
    user = User(email=body.email)
    session.add(user)
    await session.flush()  # assigns user.id; the COMMIT runs before the 201 is sent
    return UserOut(id=user.id, email=user.email)


@app.get("/users/{user_id}")
async def read_user(user_id: int, session: db.Session) -> UserOut:
    user = await session.scalar(select(User).where(User.id == user_id))
    if user is None:
        raise NotFound("User not found")
    return UserOut(id=user.id, email=user.email)


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"database": await db.ping()}
