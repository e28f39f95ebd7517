"""The app of tests/test_caching.py's two-worker test: the same body from each worker must
get the same ETag."""

import os

from fastapi import FastAPI, Response

from fastkit import setup

app = FastAPI()
setup(app, caching=True)


@app.get("/items/{item_id}")
async def read_item(item_id: int, response: Response) -> dict[str, object]:
    response.headers["X-Worker"] = str(os.getpid())
    return {"id": item_id, "name": "pen", "tags": ["a", "b"]}
