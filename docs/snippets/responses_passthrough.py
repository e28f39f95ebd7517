from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from fastkit import Envelope, EnvelopeRoute, ok


class Item(BaseModel):
    id: int
    name: str


app = FastAPI()
router = APIRouter(route_class=EnvelopeRoute)


@router.get("/featured")
async def featured() -> Envelope[Item]:  # an Envelope is sent as it is
    return ok(Item(id=1, name="pen"), message="featured today", code=20001)


@router.get("/items/{item_id}/label", response_model=Item)
async def label(item_id: int, text: bool = False) -> Any:
    if text:  # a Response is sent as it is, even from a wrapped endpoint
        return PlainTextResponse(f"item {item_id}: pen")
    return Item(id=item_id, name="pen")


@router.get("/export.csv")
async def export() -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        yield b"id,name\n"
        yield b"1,pen\n"

    return StreamingResponse(rows(), media_type="text/csv")


@router.get("/items/stream")
async def stream_items() -> AsyncIterator[Item]:  # FastAPI streams it as JSON Lines
    yield Item(id=1, name="pen")
    yield Item(id=2, name="ink")


@router.delete("/items/{item_id}", status_code=204)
async def delete_item(item_id: int) -> None:
    return None


@router.get("/hello", response_class=HTMLResponse)
async def hello() -> str:
    return "<h1>Hello</h1>"


app.include_router(router)
