from fastapi import FastAPI
from pydantic import BaseModel

from fastkit import EnvelopeRoute, NotFound, OptionalSlashRouter, setup


class ItemIn(BaseModel):
    name: str


class Item(BaseModel):
    id: int
    name: str


ITEMS = {1: Item(id=1, name="pen")}

app = setup(FastAPI())
router = OptionalSlashRouter(prefix="/items", route_class=EnvelopeRoute)


@router.get("")  # answers /items and /items/
async def list_items() -> list[Item]:
    return list(ITEMS.values())


@router.post("", status_code=201)  # POST /items/ too, body and all
async def create_item(body: ItemIn) -> Item:
    return Item(id=2, name=body.name)


@router.get("/{item_id}/")  # declared with the slash: /items/1 answers as well
async def read_item(item_id: int) -> Item:
    if item_id not in ITEMS:
        raise NotFound("Item not found")
    return ITEMS[item_id]


app.include_router(router)
