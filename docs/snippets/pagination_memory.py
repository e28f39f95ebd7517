from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel

from fastkit import EnvelopeRoute, setup
from fastkit.pagination import LimitOffsetPage, LimitOffsetParams, Page, PageParams, paginate


class Item(BaseModel):
    id: int
    name: str


ITEMS = [Item(id=n, name=name) for n, name in enumerate(["pen", "ink", "cap", "pad", "tape"], 1)]

app = FastAPI()
setup(app)
router = APIRouter(prefix="/items", route_class=EnvelopeRoute)


@router.get("")
async def list_items(params: Annotated[PageParams, Query()]) -> Page[Item]:
    return paginate(ITEMS, params)  # documented as Envelope[Page[Item]]


@router.get("/window")
async def items_window(
    params: Annotated[LimitOffsetParams, Query()],
) -> LimitOffsetPage[Item]:
    return paginate(ITEMS, params)


# Other sizes: a params class of your own, made once at import.
NamePages = PageParams.configure(default_size=3, max_size=10)


@router.get("/names")
async def item_names(params: Annotated[NamePages, Query()]) -> Page[str]:
    return paginate(ITEMS, params, transformer=lambda items: [item.name for item in items])


app.include_router(router)
