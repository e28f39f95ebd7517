import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket

from fastkit.websocket import ConnectionManager, RedisBroker

# Every worker subscribes to the same channel and delivers to its own clients; messages
# are signed with a key derived from the secret all workers share.
broker = RedisBroker(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), secret=os.environ["SECRET_KEY"]
)
manager = ConnectionManager(broker=broker)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await manager.start()  # subscribes
    yield
    await manager.stop()  # closes this worker's clients, then the Redis connection


app = FastAPI(lifespan=lifespan)


@app.websocket("/ws/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    async with manager.connect(websocket, rooms=[room]) as conn:
        async for message in manager.iter_json(conn):
            await manager.broadcast({"from": conn.id, "data": message}, room=room)
