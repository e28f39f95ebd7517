import logging

from fastapi import BackgroundTasks, FastAPI

from fastkit import RequestIDLogFilter, setup

handler = logging.StreamHandler()
handler.addFilter(RequestIDLogFilter())  # sets record.request_id: "-" outside a request
handler.setFormatter(logging.Formatter("%(levelname)s [%(request_id)s] %(name)s: %(message)s"))
logging.basicConfig(level=logging.INFO, handlers=[handler])

log = logging.getLogger("shop")
app = setup(FastAPI())


def send_receipt(order_id: int) -> None:
    log.info("receipt for order %d sent", order_id)


@app.post("/orders/{order_id}")
async def place_order(order_id: int, tasks: BackgroundTasks) -> dict[str, int]:
    log.info("order %d placed", order_id)
    tasks.add_task(send_receipt, order_id)
    return {"order": order_id}
