"""The app that tests/test_e2e_uvicorn.py serves with a real uvicorn in a subprocess.

Not imported by the tests themselves: its logging setup belongs to the server process.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from fastkit import RequestIDLogFilter, setup

# Log lines carry the request id, so the test can find a request's lines in the output.
_handler = logging.StreamHandler()
_handler.addFilter(RequestIDLogFilter())
_handler.setFormatter(logging.Formatter("%(name)s %(levelname)s [%(request_id)s] %(message)s"))
logging.getLogger("fastkit").addHandler(_handler)
logging.getLogger("fastkit").setLevel(logging.INFO)


app = setup(FastAPI(), cors_origins=["https://app.example.com"])


@app.get("/ok")
async def ok_route() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("db password is hunter2")
