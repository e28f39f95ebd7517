"""Fixtures for the middleware tests: the anyio backend and a raw ASGI caller.

The raw caller exists for header values an HTTP client refuses to send (newlines,
non-ASCII bytes): it hands a hand-built scope to the app and records what it sends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import pytest
from starlette.types import ASGIApp, Message


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Sent:
    """The messages an ASGI app sent for one HTTP request."""

    messages: list[Message]

    @property
    def status(self) -> int:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return int(starts[0]["status"])

    def header(self, name: str) -> list[bytes]:
        """Every value of response header ``name`` (case-insensitive), in order."""
        key = name.lower().encode("latin-1")
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return [value for k, value in start.get("headers", []) if k.lower() == key]

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )

    def json(self) -> Any:
        return json.loads(self.body)


class CallASGI(Protocol):
    async def __call__(
        self,
        app: ASGIApp,
        path: str = "/",
        *,
        method: str = "GET",
        headers: Sequence[tuple[bytes, bytes]] = (),
        client: tuple[str, int] | None = ("127.0.0.1", 50000),
    ) -> Sent: ...


async def _call_asgi(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = (),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
) -> Sent:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": client,
        "server": ("testserver", 80),
    }
    messages: list[Message] = []
    response_done = anyio.Event()
    body_delivered = False

    async def receive() -> Message:
        nonlocal body_delivered
        if not body_delivered:
            body_delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await response_done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            response_done.set()

    await app(scope, receive, send)
    return Sent(messages)


@pytest.fixture
def call_asgi() -> CallASGI:
    """Call an ASGI app with a hand-built HTTP scope; returns what it sent."""
    return _call_asgi
