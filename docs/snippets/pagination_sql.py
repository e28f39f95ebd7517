import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import setup
from fastkit.db import Database, apaginate
from fastkit.pagination import (
    CursorPage,
    CursorParams,
    LimitOffsetPage,
    LimitOffsetParams,
    Page,
    PageParams,
    SortParams,
)

db = Database(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    year: Mapped[int]


class BookOut(BaseModel):
    id: int
    title: str
    year: int


class BookTitle(BaseModel):
    id: int
    title: str


BOOKS = [
    ("Dune", 1965),
    ("Solaris", 1961),
    ("Ubik", 1969),
    ("Kindred", 1979),
    ("The Left Hand of Darkness", 1969),
]

# ?sort=title, ?sort=-year,title ... anything else is answered 422.
BookSort = SortParams.allow("title", "year", default="title")
SORT_COLUMNS = {"title": Book.title, "year": Book.year}  # the only names that reach SQL


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with db.lifespan(app):
        await db.create_all(Base.metadata)
        async with db.session_scope() as session:
            if await session.scalar(select(Book.id).limit(1)) is None:
                session.add_all(Book(title=title, year=year) for title, year in BOOKS)
        yield


app = FastAPI(lifespan=lifespan)
setup(app)


@app.get("/books")
async def list_books(
    params: Annotated[PageParams, Query()],
    sort: Annotated[BookSort, Query()],
    session: db.Session,
) -> Page[BookOut]:
    # End with a unique column so that rows with equal sort values keep their page.
    stmt = select(Book).order_by(*sort.order_by(SORT_COLUMNS), Book.id)
    return await apaginate(session, stmt, params)


@app.get("/books/feed")
async def book_feed(
    params: Annotated[CursorParams, Query()],
    sort: Annotated[BookSort, Query()],
    session: db.Session,
) -> CursorPage[BookOut]:
    stmt = select(Book).order_by(*sort.order_by(SORT_COLUMNS))  # Book.id is appended
    return await apaginate(session, stmt, params)


@app.get("/books/titles")
async def book_titles(
    params: Annotated[LimitOffsetParams, Query()], session: db.Session
) -> LimitOffsetPage[BookTitle]:
    stmt = select(Book.id, Book.title).order_by(Book.id)  # items are dicts of the columns
    return await apaginate(session, stmt, params, include_total=False)
