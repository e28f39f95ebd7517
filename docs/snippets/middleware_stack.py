from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from fastkit import (
    AccessLogMiddleware,
    RequestIDMiddleware,
    TimingMiddleware,
    install_exception_handlers,
)

app = FastAPI()
install_exception_handlers(app)
# Each add_middleware() call wraps the ones added before it: add the innermost first.
app.add_middleware(TimingMiddleware)  # times the app itself
app.add_middleware(AccessLogMiddleware)  # one log record per request
app.add_middleware(RequestIDMiddleware)  # outermost: everything inside sees the id


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/export.csv")
async def export() -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        yield b"id,name\n"
        yield b"1,pen\n"

    return StreamingResponse(rows(), media_type="text/csv")
