from fastapi import APIRouter, Depends, FastAPI, UploadFile
from pydantic import BaseModel

from fastkit import BodyLimit, MiB, setup


class Note(BaseModel):
    text: str


app = FastAPI()


@app.post("/notes")  # the default: 1 MiB
async def create_note(note: Note) -> dict[str, int]:
    return {"length": len(note.text)}


uploads = APIRouter(prefix="/files", dependencies=[Depends(BodyLimit(50 * MiB))])


@uploads.post("")  # up to 50 MiB, as its router says
async def upload(file: UploadFile) -> dict[str, int]:
    return {"size": len(await file.read())}


@uploads.post("/avatar", dependencies=[Depends(BodyLimit(2 * MiB))])  # its own wins
async def upload_avatar(file: UploadFile) -> dict[str, int]:
    return {"size": len(await file.read())}


app.include_router(uploads)
setup(app)  # max_body_size=1 * MiB by default; None turns the limit off
