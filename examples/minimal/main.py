"""The smallest fastkit app: setup(), the envelope, a custom error and a paginated list.

Run it with ``uvicorn examples.minimal.main:app`` and open http://127.0.0.1:8000/docs.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel, Field

from fastkit import AppError, EnvelopeRoute, MissingDependencyError, NotFound, setup
from fastkit.docs_assets import serve_docs_locally
from fastkit.pagination import Page, PageParams, paginate
from fastkit.routing import unique_id_from_tag


class Item(BaseModel):
    id: int
    name: str = Field(min_length=1, max_length=50)
    stock: int = Field(default=0, ge=0)


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    stock: int = Field(default=0, ge=0)


class OutOfStock(AppError):
    """A business rule broken: answered 409 with business code 10001."""

    status_code = 409
    message = "Item is out of stock"


app = FastAPI(title="fastkit minimal example", generate_unique_id_function=unique_id_from_tag)
setup(app)  # envelope errors, request id, access log, timing
with contextlib.suppress(MissingDependencyError):  # the offline-docs extra
    serve_docs_locally(app)  # /docs and /redoc from this app, not a CDN
router = APIRouter(prefix="/items", tags=["items"], route_class=EnvelopeRoute)

# An in-memory store keeps the example a single file; the todo starter has a database.
ITEMS: dict[int, Item] = {1: Item(id=1, name="pen", stock=3), 2: Item(id=2, name="ink")}


@router.get("")
async def list_items(params: Annotated[PageParams, Query()]) -> Page[Item]:
    return paginate(list(ITEMS.values()), params)


@router.get("/{item_id}")
async def read_item(item_id: int) -> Item:
    item = ITEMS.get(item_id)
    if item is None:
        raise NotFound("Item not found")
    return item


@router.post("", status_code=201)
async def create_item(body: ItemIn) -> Item:
    item = Item(id=max(ITEMS, default=0) + 1, **body.model_dump())
    ITEMS[item.id] = item
    return item


@router.post("/{item_id}/take")
async def take_item(item_id: int) -> Item:
    item = await read_item(item_id)
    if item.stock == 0:
        raise OutOfStock(code=10001, data={"item_id": item_id})
    item.stock -= 1
    return item


app.include_router(router)
