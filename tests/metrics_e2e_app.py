"""The app of tests/test_metrics.py's multiprocess test: two uvicorn workers, one metrics
directory (PROMETHEUS_MULTIPROC_DIR, set before this module is imported)."""

import os

from fastapi import FastAPI

from fastkit import setup
from fastkit.metrics import metrics_router

app = FastAPI()
setup(app, metrics=True)
app.include_router(metrics_router())


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pid": str(os.getpid())}


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, str]:
    return {"pid": str(os.getpid())}
