"""The app tests/middleware/test_body_limit_e2e.py serves with a real uvicorn.

The issue's case: a JSON route behind a token check, on ``fastkit.setup(app)`` and its
default body limit. FastAPI reads a JSON body before any dependency runs, so without the
limit an unauthenticated 100 MB post is read whole (and grows the worker by hundreds of
MiB) before the 401.
"""

from typing import Annotated

from fastapi import Depends, FastAPI, Header
from pydantic import BaseModel

import fastkit
from fastkit.errors import Unauthorized


class Note(BaseModel):
    text: str


def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
    if authorization != "Bearer good":
        raise Unauthorized()


app = FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/notes", dependencies=[Depends(require_token)])
async def create_note(note: Note) -> dict[str, int]:
    return {"length": len(note.text)}


fastkit.setup(app, access_log=False)
