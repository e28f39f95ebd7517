import os

from fastapi import FastAPI
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastkit import setup
from fastkit.db import SyncDatabase

# Sync drivers: sqlite:// or postgresql+psycopg://
db = SyncDatabase(os.environ.get("SYNC_DATABASE_URL", "sqlite:///./app.db"))
app = FastAPI()
setup(app)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(500))


db.create_all(Base.metadata)


@app.post("/notes", status_code=201)
def add_note(text: str, session: db.Session) -> dict[str, int]:
    # A def endpoint runs in FastAPI's threadpool: the sync session never blocks the loop.
    session.add(Note(text=text))
    session.flush()
    return {"count": session.scalar(select(func.count()).select_from(Note)) or 0}
