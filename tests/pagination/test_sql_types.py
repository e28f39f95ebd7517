"""Edge cases of keyset pagination found in review: custom types, enums, renamed keys."""

import asyncio
import datetime as dt
import enum
from typing import Any

import pytest
from sqlalchemy import Enum, ForeignKey, Integer, String, create_engine, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, load_only, mapped_column

from fastkit.db import Database, apaginate, paginate
from fastkit.pagination import CursorParams, InvalidCursor


class Base(DeclarativeBase):
    pass


class Color(enum.Enum):
    red = "red"
    green = "green"
    blue = "blue"


class Thing(Base):
    __tablename__ = "things"
    # The attribute and the column have different names.
    ident: Mapped[int] = mapped_column("thing_id", Integer, primary_key=True)
    color: Mapped[Color] = mapped_column(Enum(Color))
    # Stored as ISO text with a "T": values must be bound with the column's own type.
    seen: Mapped[dt.datetime] = mapped_column(
        sqlite.DATETIME(
            storage_format="%(year)04d-%(month)02d-%(day)02dT%(hour)02d:%(minute)02d:%(second)02d",
            regexp=r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)",
        )
    )
    # Not loaded with the entity: a cursor must not read it from the loaded objects.
    rank: Mapped[int] = mapped_column(deferred=True)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    thing_id: Mapped[int] = mapped_column(ForeignKey("things.thing_id"))
    label: Mapped[str] = mapped_column(String(20))


def walk(db: Database, stmt: Any, size: int = 4) -> list[Any]:
    async def run() -> list[Any]:
        seen: list[Any] = []
        try:
            async with db.session_scope() as session:
                cursor = None
                for _ in range(100):  # bounded: a broken walk must not loop forever
                    page = await apaginate(session, stmt, CursorParams(cursor=cursor, size=size))
                    seen += page.items
                    if page.next_cursor is None:
                        return seen
                    cursor = page.next_cursor
                raise AssertionError("the cursor walk did not end")
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.fixture
def db(tmp_path: Any) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'edges.db'}")

    async def seed() -> None:
        await database.create_all(Base.metadata)
        async with database.session_scope() as session:
            start = dt.datetime(2026, 1, 1)
            for i in range(1, 14):
                session.add(
                    Thing(
                        ident=i,
                        color=list(Color)[i % 3],
                        seen=start + dt.timedelta(hours=i % 5),
                        rank=i % 4,
                    )
                )
            await session.flush()  # no relationship(): the parents must exist first
            session.add_all(Tag(id=i, thing_id=i, label=f"t{i}") for i in range(1, 14))
        await database.dispose()

    asyncio.run(seed())
    return database


def test_custom_stored_type_walks_once(db: Database) -> None:
    things = walk(db, select(Thing).order_by(Thing.seen))
    keys = [(t.seen, t.ident) for t in things]
    assert keys == sorted(keys)
    assert len(things) == 13


def test_enum_sort_key_and_renamed_primary_key(db: Database) -> None:
    things = walk(db, select(Thing).order_by(Thing.color.desc()))
    assert len({t.ident for t in things}) == 13
    # Enum sorts by its stored name in the database; the tie-breaker is the renamed key.
    stored = [(t.color.name, t.ident) for t in things]
    assert [c for c, _ in stored] == sorted((c for c, _ in stored), reverse=True)


def test_multi_entity_select_items_have_no_internal_columns(db: Database) -> None:
    items = walk(db, select(Thing.ident, Tag.label).join(Tag).order_by(Thing.ident))
    assert items[0] == {"ident": 1, "label": "t1"}
    assert all(set(item) == {"ident", "label"} for item in items)


def test_enum_cursor_value_must_be_a_member(db: Database) -> None:
    from fastkit.pagination import encode_cursor

    async def run() -> None:
        try:
            async with db.session_scope() as session:
                stmt = select(Thing).order_by(Thing.color)
                bad = encode_cursor(["purple", 1], "color,ident")
                with pytest.raises(InvalidCursor):
                    await apaginate(session, stmt, CursorParams(cursor=bad))
        finally:
            await db.dispose()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("stmt", "key"),
    [
        pytest.param(
            select(Thing).order_by(Thing.rank),
            lambda t: (t.rank, t.ident),
            id="deferred-sort-key",
        ),
        pytest.param(
            select(Thing).options(load_only(Thing.color)).order_by(Thing.seen),
            lambda t: (t.seen, t.ident),
            id="key-not-loaded-by-options",
        ),
        pytest.param(
            select(Thing).order_by(Thing.__table__.c.thing_id.desc()),
            lambda t: (-t.ident,),
            id="table-column-named-unlike-its-attribute",
        ),
    ],
)
def test_sort_keys_the_entities_do_not_hold_still_walk_once(
    db: Database, stmt: Any, key: Any
) -> None:
    # Keys are read from the loaded entities where they hold them, else selected as extra
    # columns; on an AsyncSession, reading an unloaded attribute would fail (no lazy IO).
    async def run() -> list[Any]:
        try:
            async with db.session_scope() as session:
                rows: list[Any] = []
                cursor = None
                for _ in range(100):
                    page = await apaginate(session, stmt, CursorParams(cursor=cursor, size=4))
                    rows += [key(await _loaded(session, t)) for t in page.items]
                    if page.next_cursor is None:
                        return rows
                    cursor = page.next_cursor
                raise AssertionError("the cursor walk did not end")
        finally:
            await db.dispose()

    keys = asyncio.run(run())
    assert len(keys) == 13
    assert keys == sorted(keys)


async def _loaded(session: Any, thing: Thing) -> Thing:
    await session.refresh(thing, ["rank", "seen"])  # for the test's own key function
    return thing


class Entry(Base):
    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    score: Mapped[int]


@pytest.mark.parametrize("stale", ["updated-by-another-connection", "changed-not-flushed"])
def test_entities_held_by_the_session_do_not_steer_the_cursor(tmp_path: Any, stale: str) -> None:
    # The session keeps the objects it loaded (Database's sessions: expire_on_commit=False),
    # so the cursor must come from the rows the database sorted, not from those objects:
    # every row once, in the database's order.
    engine = create_engine(f"sqlite:///{tmp_path / 'entries.db'}")
    Base.metadata.create_all(engine, tables=[Entry.__table__])
    with Session(engine) as session, session.begin():
        session.add_all(Entry(id=i, score=i * 10) for i in range(1, 7))
    with Session(engine, expire_on_commit=False, autoflush=False) as session:
        held = session.scalars(select(Entry)).all()
        if stale == "updated-by-another-connection":
            with engine.begin() as other:
                other.execute(update(Entry).where(Entry.id == 1).values(score=45))
            expected = [2, 3, 4, 1, 5, 6]
        else:
            held[1].score = 45  # not flushed: the database still sorts it as 20
            expected = [1, 2, 3, 4, 5, 6]
        ids: list[int] = []
        params = CursorParams(size=2)
        for _ in range(10):
            page = paginate(session, select(Entry).order_by(Entry.score), params)
            ids += [entry.id for entry in page.items]
            if page.next_cursor is None:
                break
            params = CursorParams(size=2, cursor=page.next_cursor)
    engine.dispose()
    assert ids == expected
