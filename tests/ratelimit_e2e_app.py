"""The app tests/test_ratelimit_e2e.py serves with real uvicorn workers (``--factory``).

Not imported by the tests themselves: each worker process calls `create_app` and builds its
own store from the environment the test gives the server:

- ``FASTKIT_E2E_REDIS_URL``: a `RedisStore` on that server (shared by every worker);
  unset, a `MemoryStore` (one worker's own).
- ``FASTKIT_E2E_PREFIX``: the Redis key prefix (one per test, so its keys can be deleted).

Every answer, 429s included, says which worker process gave it (``X-Worker-Pid``), so
the test can tell that more than one worker took from the shared budget.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit import install_exception_handlers
from fastkit.ratelimit import RateLimit
from fastkit.stores import MemoryStore, RedisStore, Store

LIMIT = "50/minute"
PID_HEADER = b"x-worker-pid"


class WorkerPid:
    """Adds this process's id to every HTTP answer (pure ASGI, so 429s carry it too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (PID_HEADER, self.pid)]
            await send(message)

        await self.app(scope, receive, send_with_pid)


def create_app() -> FastAPI:
    url = os.environ.get("FASTKIT_E2E_REDIS_URL")
    store: Store = (
        RedisStore(url, prefix=os.environ["FASTKIT_E2E_PREFIX"]) if url else MemoryStore()
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = FastAPI(lifespan=lifespan)
    install_exception_handlers(app)  # 429s in the envelope
    app.add_middleware(WorkerPid)
    # One budget for every client, so the count does not depend on the client's address;
    # each burst of the test names its own (X-Burst), so that a burst run again starts full.
    everyone = RateLimit(
        LIMIT, store=store, key=lambda request: request.headers.get("x-burst", "everyone")
    )

    @app.get("/ping")
    async def ping() -> dict[str, int]:
        return {"pid": os.getpid()}

    @app.get("/limited", dependencies=[Depends(everyone)])
    async def limited() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app
