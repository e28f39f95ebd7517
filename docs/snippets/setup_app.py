from fastapi import FastAPI

from fastkit import NotFound, setup

app = FastAPI()
setup(
    app,
    cors_origins=["https://app.example.com"],
    trusted_hosts=["api.example.com"],
    gzip_min_size=1000,
)  # plus the defaults: envelope errors, request id, access log, timing


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    if item_id > 100:
        raise NotFound("Item not found")
    return {"id": item_id}


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("database password is hunter2")
