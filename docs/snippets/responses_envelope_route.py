from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from fastkit import EnvelopeRoute, NotFound, install_exception_handlers


class ItemIn(BaseModel):
    name: str


class Item(BaseModel):
    id: int
    name: str
    supplier_email: str


ITEMS = {1: Item(id=1, name="pen", supplier_email="sales@example.com")}

app = FastAPI()
install_exception_handlers(app)
router = APIRouter(prefix="/items", route_class=EnvelopeRoute)


def get_item(item_id: int) -> Item:
    if item_id not in ITEMS:
        raise NotFound("Item not found")
    return ITEMS[item_id]


@router.get("")
async def list_items() -> list[Item]:  # documented as Envelope[list[Item]]
    return list(ITEMS.values())


@router.get("/{item_id}")
def read_item(item_id: int) -> Item:  # sync endpoints still run in the threadpool
    return get_item(item_id)


@router.post("", status_code=201)  # 201 is kept, and mirrored in `code`
async def create_item(body: ItemIn) -> Item:
    return Item(id=2, name=body.name, supplier_email="unknown@example.com")


@router.get("/{item_id}/public", response_model=Item, response_model_exclude={"supplier_email"})
async def read_public_item(item_id: int) -> Item:  # the filter applies inside `data`
    return get_item(item_id)


app.include_router(router)
