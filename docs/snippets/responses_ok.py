from fastapi import FastAPI
from pydantic import BaseModel

from fastkit import Envelope, ok


class Item(BaseModel):
    id: int
    name: str


app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> Envelope[Item]:
    return ok(Item(id=item_id, name="pen"))


@app.get("/items")
async def list_items() -> Envelope[list[Item]]:
    items = [Item(id=1, name="pen"), Item(id=2, name="ink")]
    return ok(items, message=f"{len(items)} items")


@app.post("/items", status_code=201)
async def create_item(item: Item) -> Envelope[Item]:
    # ok() does not set the HTTP status: the route does; `code` repeats it by convention.
    return ok(item, message="created", code=201)
