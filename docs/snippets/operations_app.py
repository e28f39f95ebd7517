import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastkit import setup
from fastkit.db import Database
from fastkit.health import health_router
from fastkit.metrics import metrics_router
from fastkit.stores import RedisStore

db = Database(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
store = RedisStore(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await store.aclose()
    await db.dispose()


app = FastAPI(lifespan=lifespan)
setup(app, metrics=True)  # every request counted and timed, by route template

# /health/live: always 200. /health: both checks at once, 1 s each; 503 names what failed.
app.include_router(health_router(checks={"database": db.ping, "redis": store.ping}, timeout=1.0))
app.include_router(metrics_router())  # GET /metrics, for Prometheus


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}
