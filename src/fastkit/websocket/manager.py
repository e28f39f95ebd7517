"""A websocket connection manager with rooms and concurrent, isolated delivery."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from starlette.exceptions import WebSocketException
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fastkit.websocket.brokers import Broker, MemoryBroker

__all__ = [
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_SEND_TIMEOUT",
    "CLOSE_TOO_SLOW",
    "Connection",
    "ConnectionManager",
]

logger = logging.getLogger("fastkit.websocket")

CLOSE_TOO_SLOW = 1008  # policy violation: the client does not read its messages
CLOSE_SEND_TIMEOUT = 1011  # a send took longer than send_timeout
CLOSE_MESSAGE_TOO_BIG = 1009

Frame = tuple[str, str | bytes]  # ("text" | "bytes", payload)


def _to_wire(message: Any) -> dict[str, Any]:
    """A JSON-able form of ``message`` for the broker: str, bytes or a JSON value."""
    if isinstance(message, str):
        return {"kind": "text", "value": message}
    if isinstance(message, (bytes, bytearray, memoryview)):
        return {"kind": "bytes", "value": base64.b64encode(bytes(message)).decode("ascii")}
    return {"kind": "text", "value": json.dumps(message, separators=(",", ":"), default=str)}


def _from_wire(payload: dict[str, Any]) -> Frame:
    if payload.get("kind") == "bytes":
        return "bytes", base64.b64decode(payload["value"])
    return "text", str(payload["value"])


if sys.version_info >= (3, 11):

    async def _with_timeout(awaitable: Awaitable[None], seconds: float) -> None:
        # asyncio.timeout, unlike wait_for on 3.11, does not make a task per message.
        async with asyncio.timeout(seconds):
            await awaitable

else:  # pragma: no cover - Python 3.10

    async def _with_timeout(awaitable: Awaitable[None], seconds: float) -> None:
        await asyncio.wait_for(awaitable, seconds)


class Connection:
    """One accepted websocket: its id, rooms, and outbound queue with its writer task."""

    def __init__(self, websocket: WebSocket, client_id: str, queue_size: int) -> None:
        self.websocket = websocket
        self.id = client_id
        self.rooms: set[str] = set()
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=queue_size)
        self.writer: asyncio.Task[None] | None = None
        self.closed = False
        self.close_code = 1000
        # Set when the manager drops the connection: wakes a handler waiting in receive_json
        # even if the close frame could not be written (a client that stopped reading).
        self.dropped = asyncio.Event()

    def __repr__(self) -> str:
        return f"Connection({self.id!r}, rooms={sorted(self.rooms)})"


class ConnectionManager:
    """Websocket clients, rooms, personal sends and broadcasts that no client can stall.

    Each connection has a bounded outbound queue and its own writer task, so `broadcast`
    returns once the message is queued for everyone. A client whose queue is full is
    closed with 1008 (it does not read), one whose send takes longer than
    ``send_timeout`` with 1011, and a dead one is removed on its first failed send; the
    others never wait for it. With a `RedisBroker`, broadcasts and sends reach the
    clients of every worker process.

    Args:
        broker: How messages reach other processes (default: `MemoryBroker`, this one).
        send_timeout: Seconds one send may take before the client is dropped.
        queue_size: Messages queued per client before it counts as stalled.
        max_message_bytes: Largest incoming message `receive_json` accepts (else 1009).

    Raises:
        ValueError: If a size or timeout is not positive.

    Example:
        ```python
        manager = ConnectionManager()

        @app.websocket("/ws/{room}")
        async def chat(websocket: WebSocket, room: str) -> None:
            async with manager.connect(websocket, rooms=[room]) as conn:
                async for message in manager.iter_json(conn):
                    await manager.broadcast({"from": conn.id, "text": message}, room=room)
        ```
    """

    def __init__(
        self,
        *,
        broker: Broker | None = None,
        send_timeout: float = 5.0,
        queue_size: int = 256,
        max_message_bytes: int = 64 * 1024,
    ) -> None:
        if send_timeout <= 0 or queue_size < 1 or max_message_bytes < 1:
            raise ValueError(
                "send_timeout, queue_size and max_message_bytes must be positive, "
                "e.g. send_timeout=5.0, queue_size=256, max_message_bytes=65536."
            )
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.send_timeout = send_timeout
        self.queue_size = queue_size
        self.max_message_bytes = max_message_bytes
        self._connections: dict[str, Connection] = {}
        self._rooms: dict[str, set[str]] = {}
        self._started = False
        self._start_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the broker (done on the first connection if you don't)."""
        async with self._start_lock:
            if not self._started:
                await self.broker.start(self._deliver)
                self._started = True

    async def stop(self) -> None:
        """Close every connection and stop the broker (call it at shutdown)."""
        for conn in list(self._connections.values()):
            await self._close(conn, 1001)
        if self._started:
            await self.broker.stop()
            self._started = False

    @asynccontextmanager
    async def connect(
        self,
        websocket: WebSocket,
        *,
        client_id: str | None = None,
        rooms: Iterable[str] = (),
        subprotocol: str | None = None,
    ) -> AsyncIterator[Connection]:
        """Accept ``websocket``, register it, and always unregister it on exit.

        Exit covers a normal return, a disconnect, an error and cancellation.

        Raises:
            WebSocketException: (1008, before accept) if ``client_id`` is already connected
                to this process.
        """
        await self.start()
        client_id = client_id or uuid.uuid4().hex
        if client_id in self._connections:
            # Refused at the handshake, like a failed auth: FastAPI closes it with 1008.
            raise WebSocketException(1008, reason="client id already connected")
        await websocket.accept(subprotocol=subprotocol)
        conn = Connection(websocket, client_id, self.queue_size)
        self._connections[client_id] = conn
        for room in rooms:
            self.join(conn, room)
        conn.writer = asyncio.create_task(self._write(conn), name=f"fastkit-ws-{client_id}")
        try:
            yield conn
        except WebSocketDisconnect:
            pass  # the client left: nothing to report
        finally:
            await self._close(conn, 1000)

    # --- registry ----------------------------------------------------------------------------

    def join(self, conn: Connection, room: str) -> None:
        """Add ``conn`` to ``room``."""
        conn.rooms.add(room)
        self._rooms.setdefault(room, set()).add(conn.id)

    def leave(self, conn: Connection, room: str) -> None:
        """Remove ``conn`` from ``room`` (no error if it was not in it)."""
        conn.rooms.discard(room)
        members = self._rooms.get(room)
        if members is not None:
            members.discard(conn.id)
            if not members:
                del self._rooms[room]

    def clients(self, room: str | None = None) -> list[str]:
        """Ids of this process's clients, optionally only those in ``room``."""
        if room is None:
            return list(self._connections)
        return sorted(self._rooms.get(room, ()))

    def rooms(self) -> list[str]:
        """Rooms with at least one client in this process."""
        return sorted(self._rooms)

    def __len__(self) -> int:
        return len(self._connections)

    # --- sending -----------------------------------------------------------------------------

    async def send(self, client_id: str, message: Any) -> None:
        """Send ``message`` (str, bytes or JSON-able) to one client, in any worker."""
        await self.broker.publish({"op": "send", "to": client_id, "message": _to_wire(message)})

    async def broadcast(
        self, message: Any, *, room: str | None = None, exclude: Iterable[str] | None = None
    ) -> None:
        """Send ``message`` to every client (of ``room``), except the ids in ``exclude``.

        Returns once the message is queued; slow clients never delay it.
        """
        await self.broker.publish(
            {
                "op": "broadcast",
                "room": room,
                "exclude": sorted(exclude or ()),
                "message": _to_wire(message),
            }
        )

    async def _deliver(self, envelope: dict[str, Any]) -> None:
        """Queue a broker message for the matching local connections."""
        try:
            frame = _from_wire(envelope["message"])
            op = envelope["op"]
        except (KeyError, TypeError, ValueError):
            logger.warning("Ignoring a malformed broker message")
            return
        if op == "send":
            conn = self._connections.get(str(envelope.get("to")))
            targets = [conn] if conn is not None else []
        elif op == "broadcast":
            room, excluded = envelope.get("room"), set(envelope.get("exclude") or ())
            ids = self._connections if room is None else self._rooms.get(room, set())
            targets = [self._connections[i] for i in list(ids) if i not in excluded]
        else:
            return
        for conn in targets:
            self._enqueue(conn, frame)

    def _enqueue(self, conn: Connection, frame: Frame) -> None:
        if conn.closed:
            return
        try:
            conn.queue.put_nowait(frame)
        except asyncio.QueueFull:
            logger.warning("Closing websocket %s: its queue is full (it does not read)", conn.id)
            asyncio.get_running_loop().create_task(self._close(conn, CLOSE_TOO_SLOW))

    async def _write(self, conn: Connection) -> None:
        websocket = conn.websocket
        try:
            while True:
                kind, payload = await conn.queue.get()
                try:
                    if kind == "bytes":
                        coro = websocket.send_bytes(payload)  # type: ignore[arg-type]
                    else:
                        coro = websocket.send_text(payload)  # type: ignore[arg-type]
                    await _with_timeout(coro, self.send_timeout)
                except (TimeoutError, asyncio.TimeoutError):
                    logger.warning("Closing websocket %s: a send timed out", conn.id)
                    asyncio.get_running_loop().create_task(self._close(conn, CLOSE_SEND_TIMEOUT))
                    return
                except Exception:
                    # Gone without a close frame, or closed meanwhile: drop it.
                    asyncio.get_running_loop().create_task(self._close(conn, 1006, send=False))
                    return
        except asyncio.CancelledError:
            pass

    async def _close(self, conn: Connection, code: int, *, send: bool = True) -> None:
        """Unregister ``conn``, stop its writer and close its socket; safe to call twice."""
        if conn.closed:
            return
        conn.closed = True
        conn.close_code = code
        conn.dropped.set()
        if self._connections.get(conn.id) is conn:
            del self._connections[conn.id]
        for room in list(conn.rooms):
            self.leave(conn, room)
        writer = conn.writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        websocket = conn.websocket
        if send and websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code=code), 1.0)

    # --- receiving ---------------------------------------------------------------------------

    async def receive_json(self, conn: Connection) -> Any:
        """The next JSON message from ``conn``.

        A malformed message is answered with an error frame
        ``{"type": "error", "error": "Malformed JSON"}`` and skipped (the connection stays);
        one over ``max_message_bytes`` closes the connection with 1009.

        Raises:
            WebSocketDisconnect: When the client leaves or was closed.
        """
        while True:
            message = await self._next_message(conn)
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
            if size > self.max_message_bytes:
                await self._close(conn, CLOSE_MESSAGE_TOO_BIG)
                raise WebSocketDisconnect(CLOSE_MESSAGE_TOO_BIG)
            try:
                return json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                self._enqueue(conn, ("text", '{"type":"error","error":"Malformed JSON"}'))

    async def _next_message(self, conn: Connection) -> Any:
        """The next ASGI message, or a disconnect as soon as the manager drops ``conn``."""
        if conn.closed:
            raise WebSocketDisconnect(conn.close_code)
        receive = asyncio.ensure_future(conn.websocket.receive())
        dropped = asyncio.ensure_future(conn.dropped.wait())
        try:
            done, _ = await asyncio.wait({receive, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receive, dropped):
                if not task.done():
                    task.cancel()
        if receive in done:
            return receive.result()
        raise WebSocketDisconnect(conn.close_code)

    async def iter_json(self, conn: Connection) -> AsyncIterator[Any]:
        """Yield `receive_json` messages until the client leaves."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                yield await self.receive_json(conn)
