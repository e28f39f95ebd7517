from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel

from fastkit import NotFound, setup
from fastkit.caching import Idempotency, ResponseCache, check_if_match, etag_of
from fastkit.stores import MemoryStore

store = MemoryStore()  # RedisStore("redis://...") to share them across workers
app = FastAPI()
setup(app, caching=True)  # ETags and 304s on GET JSON answers; stores what these keep:

reports = ResponseCache(ttl=30, tags=["orders"], store=store)
idempotent = Idempotency(store=store)
ORDERS: dict[int, dict[str, Any]] = {}


class OrderIn(BaseModel):
    item: str


def get_order(order_id: int) -> dict[str, Any]:
    if order_id not in ORDERS:
        raise NotFound("Order not found")
    return ORDERS[order_id]


@app.get("/reports/daily", dependencies=[Depends(reports)])
async def daily_report() -> dict[str, int]:
    return {"orders": len(ORDERS)}  # computed once per caller every 30 s at most


@app.post("/orders", status_code=201, dependencies=[Depends(idempotent)])
async def create_order(body: OrderIn) -> dict[str, Any]:
    order = {"id": len(ORDERS) + 1, "item": body.item, "version": 1}
    ORDERS[order["id"]] = order
    await reports.invalidate("orders")  # the report changed: drop its cached answers
    return order


@app.get("/orders/{order_id}")
async def read_order(order_id: int, response: Response) -> dict[str, Any]:
    order = get_order(order_id)
    response.headers["ETag"] = etag_of("order", order_id, order["version"])
    return order


@app.put("/orders/{order_id}")
async def replace_order(
    order_id: int, body: OrderIn, request: Request, response: Response
) -> dict[str, Any]:
    order = get_order(order_id)
    check_if_match(request, etag_of("order", order_id, order["version"]))  # 412 when stale
    order.update(item=body.item, version=order["version"] + 1)
    response.headers["ETag"] = etag_of("order", order_id, order["version"])
    return order
