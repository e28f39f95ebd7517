"""The app that tests/websocket/test_uvicorn.py serves with a real uvicorn process.

Not imported by the tests themselves: its logging and its manager belong to the server
process. Configured by environment variables, read at import:

- ``FASTKIT_WS_QUEUE_SIZE`` / ``FASTKIT_WS_SEND_TIMEOUT``: the manager's options.

Routes:

- ``WS /ws/{client_id}``: registers the client; ``{"op": "broadcast", "i": n, "size": s}``
  broadcasts ``{"i": n, "pad": "x" * s}`` to every client;
- ``GET /ok``; ``GET /clients``: the client ids;
- ``POST /send/{client_id}``: the JSON body, through the manager.
"""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket

from fastkit.websocket import ConnectionManager

_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
logging.getLogger("fastkit").addHandler(_handler)
logging.getLogger("fastkit").setLevel(logging.INFO)

manager = ConnectionManager(
    queue_size=int(os.environ.get("FASTKIT_WS_QUEUE_SIZE", "256")),
    send_timeout=float(os.environ.get("FASTKIT_WS_SEND_TIMEOUT", "5")),
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await manager.start()
    yield
    await manager.stop()


app = FastAPI(lifespan=lifespan)


@app.get("/ok")
async def ok() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/clients")
async def clients() -> dict[str, Any]:
    return {"clients": sorted(manager.clients())}


@app.post("/send/{client_id}")
async def send(client_id: str, message: dict[str, Any]) -> dict[str, bool]:
    await manager.send(client_id, message)
    return {"ok": True}


@app.websocket("/ws/{client_id}")
async def session(websocket: WebSocket, client_id: str) -> None:
    async with manager.connect(websocket, client_id=client_id) as conn:
        async for message in manager.iter_json(conn):
            if isinstance(message, dict) and message.get("op") == "broadcast":
                size = min(int(message.get("size", 0)), 1024 * 1024)
                await manager.broadcast({"i": message["i"], "pad": "x" * size})
