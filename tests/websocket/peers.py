"""Starlette websockets without a server, for driving `ConnectionManager` step by step.

A `Peer` is the client end of a real ``starlette.websockets.WebSocket``: the test decides
what the client sends, and whether the client reads (a stalled peer's sends never finish,
as when a client's TCP window is full) or is gone (its sends fail as uvicorn's do).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from starlette.types import Message
from starlette.websockets import WebSocket

from fastkit.websocket import Connection, ConnectionManager

POLL = 0.01


class Peer:
    """The client end of one websocket: what the app sent it, and how it behaves."""

    def __init__(
        self, *, stall: bool = False, fail: bool = False, stall_close: bool = False
    ) -> None:
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.to_app.put_nowait({"type": "websocket.connect"})
        self.sent: list[Message] = []
        self.stall = stall
        self.stall_close = stall_close  # its close frame waits too, as behind a full window
        self.fail = fail
        self.released = asyncio.Event()  # a stalled peer reads again once set
        scope = {
            "type": "websocket",
            "path": "/ws",
            "headers": [],
            "query_string": b"",
            "subprotocols": [],
        }
        self.websocket = WebSocket(scope, self._receive, self._send)

    async def _receive(self) -> Message:
        return await self.to_app.get()

    async def _send(self, message: Message) -> None:
        await asyncio.sleep(0)  # a server's send yields to the event loop
        if message["type"] == "websocket.send":
            if self.fail:
                raise OSError("Connection reset by peer")  # uvicorn's ClientDisconnected
            if self.stall:
                await self.released.wait()
        elif message["type"] == "websocket.close" and self.stall_close:
            await self.released.wait()
        self.sent.append(message)

    def say(self, text: str) -> None:
        self.to_app.put_nowait({"type": "websocket.receive", "text": text})

    def leave(self, code: int = 1000) -> None:
        self.to_app.put_nowait({"type": "websocket.disconnect", "code": code})

    @property
    def accepted(self) -> bool:
        return any(m["type"] == "websocket.accept" for m in self.sent)

    @property
    def frames(self) -> list[str | bytes]:
        return [
            m["text"] if m.get("text") is not None else m["bytes"]
            for m in self.sent
            if m["type"] == "websocket.send"
        ]

    @property
    def close_code(self) -> int | None:
        codes = [m.get("code", 1000) for m in self.sent if m["type"] == "websocket.close"]
        assert len(codes) <= 1, f"closed twice: {codes}"
        return codes[0] if codes else None


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, polling, for at most ``timeout`` seconds."""
    for _ in range(int(timeout / POLL)):
        if predicate():
            return
        await asyncio.sleep(POLL)
    assert predicate(), f"not true within {timeout} s"


async def serve(
    manager: ConnectionManager,
    peer: Peer,
    client_id: str,
    rooms: Iterable[str] = (),
    conns: dict[str, Connection] | None = None,
) -> Connection:
    """What a typical endpoint does: connect, then read JSON until the client leaves.

    The connection goes into ``conns`` (by client id) once it is registered.
    """
    async with manager.connect(peer.websocket, client_id=client_id, rooms=rooms) as conn:
        if conns is not None:
            conns[client_id] = conn
        async for _ in manager.iter_json(conn):
            pass
    return conn


@dataclass
class Sessions:
    """The endpoint tasks and the registered connections, by client id."""

    tasks: dict[str, asyncio.Task[Connection]] = field(default_factory=dict)
    conns: dict[str, Connection] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def sessions(manager: ConnectionManager, **peers: Peer) -> AsyncIterator[Sessions]:
    """Serve each peer (its keyword is its client id); on exit, make each leave and finish."""
    running = Sessions()
    for client_id, peer in peers.items():
        running.tasks[client_id] = asyncio.create_task(
            serve(manager, peer, client_id, conns=running.conns)
        )
    tasks = running.tasks
    try:
        await eventually(lambda: running.conns.keys() == peers.keys())
        yield running
    finally:
        for peer in peers.values():
            peer.released.set()
            peer.leave()
        _, pending = await asyncio.wait(tasks.values(), timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert not pending, "a session did not end within 10 s of its client leaving"
