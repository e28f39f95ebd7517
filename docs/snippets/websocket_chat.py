from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket

from fastkit.websocket import ConnectionManager

manager = ConnectionManager()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await manager.start()
    yield
    await manager.stop()  # closes every connection (1001) and stops the broker


app = FastAPI(lifespan=lifespan)


@app.websocket("/ws/{room}")
async def chat(websocket: WebSocket, room: str, name: str = "guest") -> None:
    async with manager.connect(websocket, rooms=[room]) as conn:
        await manager.broadcast({"type": "joined", "name": name}, room=room, exclude=[conn.id])
        async for message in manager.iter_json(conn):
            await manager.broadcast({"type": "message", "name": name, "data": message}, room=room)
    # The client has left, and the manager has already removed it from the room.
    await manager.broadcast({"type": "left", "name": name}, room=room)


@app.get("/rooms")
async def rooms() -> dict[str, int]:
    return {room: len(manager.clients(room)) for room in manager.rooms()}
