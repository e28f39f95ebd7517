from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from fastkit import RequestIDMiddleware, get_request_id, install_exception_handlers

OUTBOX: list[dict[str, str | None]] = []  # stands in for your mail queue


class OutOfStock(Exception):
    pass


def upstream_headers() -> dict[str, str]:
    """Headers for calls to other services, so the id follows the request there."""
    request_id = get_request_id()
    return {"X-Request-ID": request_id} if request_id else {}


UpstreamHeaders = Annotated[dict[str, str], Depends(upstream_headers)]

app = FastAPI()
install_exception_handlers(app)
app.add_middleware(RequestIDMiddleware)


@app.exception_handler(OutOfStock)
async def out_of_stock(request: Request, exc: OutOfStock) -> JSONResponse:
    return JSONResponse({"error": "out of stock", "request_id": get_request_id()}, 409)


def send_receipt(order_id: int) -> None:  # runs after the response, in the threadpool
    OUTBOX.append({"receipt": f"order {order_id}", "request_id": get_request_id()})


@app.post("/orders/{order_id}")
async def place_order(
    order_id: int, tasks: BackgroundTasks, upstream: UpstreamHeaders
) -> dict[str, object]:
    if order_id == 0:
        raise OutOfStock
    tasks.add_task(send_receipt, order_id)
    return {"order": order_id, "request_id": get_request_id(), "upstream_headers": upstream}
