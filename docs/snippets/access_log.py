import json
import logging

from fastapi import FastAPI

from fastkit import AccessLogMiddleware, RequestIDMiddleware, install_exception_handlers

FIELDS = ("method", "path", "status", "duration_ms", "request_id", "client")


class JSONAccessFormatter(logging.Formatter):
    """One JSON object per line, from the attributes AccessLogMiddleware puts on the record."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"level": record.levelname, **{f: getattr(record, f) for f in FIELDS}})


handler = logging.StreamHandler()
handler.setFormatter(JSONAccessFormatter())
access_logger = logging.getLogger("fastkit.access")
access_logger.addHandler(handler)
access_logger.setLevel(logging.INFO)  # nothing is logged below INFO
access_logger.propagate = False  # JSON lines only, not also through the root logger

app = FastAPI()
install_exception_handlers(app)
app.add_middleware(AccessLogMiddleware)  # logger="fastkit.access" by default
app.add_middleware(RequestIDMiddleware)  # outside it, so records carry the id


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("database password is hunter2")
