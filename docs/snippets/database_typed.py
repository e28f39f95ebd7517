from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fastkit.db import Database

db = Database("sqlite+aiosqlite://")  # in memory: one shared connection

# For type checkers: a module-level alias with the same scope="function" dependency.
SessionDep = Annotated[AsyncSession, db.depends]
# Written out, that is:
SameThing = Annotated[AsyncSession, Depends(db.session, scope="function")]

app = FastAPI(lifespan=db.lifespan)


@app.get("/answer")
async def answer(session: SessionDep) -> int:
    return int(await session.scalar(text("SELECT 42")) or 0)
