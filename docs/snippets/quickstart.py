from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from fastkit import EnvelopeRoute, NotFound, install_exception_handlers


class Item(BaseModel):
    id: int
    name: str


ITEMS = {1: Item(id=1, name="pen"), 2: Item(id=2, name="ink")}

app = FastAPI()
install_exception_handlers(app)  # every error is answered in the envelope
router = APIRouter(prefix="/items", route_class=EnvelopeRoute)  # every answer is wrapped


@router.get("")
async def list_items() -> list[Item]:
    return list(ITEMS.values())


@router.get("/{item_id}")
async def read_item(item_id: int) -> Item:
    item = ITEMS.get(item_id)
    if item is None:
        raise NotFound("Item not found")
    return item


app.include_router(router)
