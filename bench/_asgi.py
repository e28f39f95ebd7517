"""A minimal in-process ASGI driver: scope, receive and send built by hand, no server.

Shared by the in-process benchmarks. A fresh scope per request, as uvicorn builds it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

ASGIApp = Callable[..., Any]

REQUEST_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"fastkit-bench/1"),
    (b"accept", b"*/*"),
]
_REQUEST = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT = {"type": "http.disconnect"}


def make_scope(
    path: str = "/item",
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    """A fresh scope per request, as uvicorn builds it (middleware may mutate it).

    ``headers`` (lower-case names, as uvicorn passes them) are added after the defaults.
    """
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # what uvicorn announces
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 54321),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "headers": [*REQUEST_HEADERS, *headers] if headers else list(REQUEST_HEADERS),
        "state": {},
    }


class Exchange:
    """One request's ``receive`` and ``send``.

    ``receive`` hands over the (empty) body once; a later call waits until the response
    is complete and then reports a disconnect, as a server would for a closed exchange.
    """

    __slots__ = ("body", "complete", "headers", "request_sent", "status", "waiter")

    def __init__(self) -> None:
        self.request_sent = False
        self.complete = False
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        if not self.request_sent:
            self.request_sent = True
            return _REQUEST
        if not self.complete:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return _DISCONNECT

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = message.get("headers", [])
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                self.complete = True
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(None)


async def one_request(
    app: ASGIApp,
    path: str = "/item",
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] | None = None,
) -> Exchange:
    exchange = Exchange()
    await app(make_scope(path, method, headers), exchange.receive, exchange.send)
    return exchange


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


async def drive(
    app: ASGIApp,
    n: int,
    clock: Callable[[], float] = time.thread_time,
    path: str = "/item",
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] | None = None,
) -> float:
    """Send ``n`` sequential requests to ``app``; return requests per second of ``clock``.

    The default clock is this thread's CPU time: the loop never waits on I/O, so on an idle
    machine it equals wall time, and on a busy one it leaves out the time other processes
    held the CPU.
    """
    gc.collect()
    start = clock()
    for _ in range(n):
        exchange = Exchange()
        await app(make_scope(path, method, headers), exchange.receive, exchange.send)
    return n / (clock() - start)
