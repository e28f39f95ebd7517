"""A websocket connection manager with rooms and concurrent, isolated delivery."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import contextvars
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fastkit.metrics import record
from fastkit.websocket.brokers import Broker, MemoryBroker
from fastkit.websocket.refusals import WebSocketRefused

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
# Closes the server decided, for fastkit_websocket_drops_total{reason} (fastkit.metrics);
# not 1000 (the handler or the client ended it). 1011 is a send timeout or a handler's
# error: their callers name the reason.
_DROP_REASONS = {CLOSE_TOO_SLOW: "slow_reader", 1006: "gone", 1001: "shutdown"}
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
        # The close frame's bound (sends have the watchdog, see ConnectionManager._watch).
        async with asyncio.timeout(seconds):
            await awaitable

else:  # pragma: no cover - Python 3.10

    async def _with_timeout(awaitable: Awaitable[None], seconds: float) -> None:
        await asyncio.wait_for(awaitable, seconds)


# Run a step of a send as its connection's writer task would, from a loop callback (see
# ConnectionManager._flush): asyncio's own hooks, which its tasks and 3.12's eager tasks
# use. Every supported Python has them; without them each writer wakes for its frames.
_enter_task: Any = getattr(asyncio.tasks, "_enter_task", None)
_leave_task: Any = getattr(asyncio.tasks, "_leave_task", None)
_INLINE = callable(_enter_task) and callable(_leave_task)


class _Resumed:
    """Awaiting it runs ``coro`` to its end from the awaiting task, each step in ``context``.

    As ``await coro`` would, except that every step runs in ``context`` whichever task runs
    it, and that ``coro`` may have been started elsewhere: then ``yielded`` is what its first
    step yielded (a future it waits for, or None for a bare yield).
    """

    __slots__ = ("context", "coro", "started", "throw", "yielded")

    def __init__(
        self,
        context: contextvars.Context,
        coro: Coroutine[Any, Any, None],
        *,
        started: bool = False,
        yielded: Any = None,
    ) -> None:
        self.context = context
        self.coro = coro
        self.started = started
        self.yielded = yielded
        self.throw: BaseException | None = None  # to raise in coro first (see _write)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.context.run(self.coro.close)

    def __await__(self) -> Generator[Any, Any, None]:
        coro, run = self.coro, self.context.run
        try:
            if self.throw is not None:
                value = run(coro.throw, self.throw)
            elif self.started:
                value = self.yielded
            else:
                value = run(coro.send, None)
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    self.close()
                    raise
                except BaseException as exc:  # the task's cancellation: the send handles it
                    value = run(coro.throw, exc)
                else:
                    value = run(coro.send, sent)
        except StopIteration:
            return


class Connection:
    """One accepted websocket: its id, rooms, and outbound queue with its writer task."""

    def __init__(self, websocket: WebSocket, client_id: str, queue_size: int) -> None:
        self.websocket = websocket
        self.id = client_id
        self.rooms: set[str] = set()
        self.user_id: str | None = None  # connect(user_id=...): counted per user
        # Frames not sent yet, at most queue_size (the one being sent is not counted).
        self.queue: collections.deque[Frame] = collections.deque()
        self.queue_size = queue_size
        # Set while the writer is idle; its result wakes it, with a send to carry on (see
        # ConnectionManager._flush) or None.
        self._waiter: asyncio.Future[_Resumed | None] | None = None
        self._context: contextvars.Context | None = None  # the writer's; its sends run in it
        # Loop time at which the current send began, None between sends: the manager's
        # watchdog drops the connection once a send is older than send_timeout.
        self._send_started: float | None = None
        self.writer: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None  # sends the close frame, see _drop
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
        close_timeout: Seconds the close frame of a dropped client may wait for the client
            to read its buffered messages; after that the handler returns and the server
            closes the socket without it.
        max_connections: Connections this process accepts at once; more are refused
            (close code 1013, HTTP 503). None for no cap.
        max_connections_per_user: Connections one ``user_id`` (see `connect`) may hold in
            this process; more are refused (1008, HTTP 429). None for no cap.

    Raises:
        ValueError: If a size, timeout or cap is not positive.

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
        close_timeout: float = 10.0,
        max_connections: int | None = None,
        max_connections_per_user: int | None = None,
    ) -> None:
        # "not x > 0" also refuses NaN, which every comparison would let through.
        if (
            not send_timeout > 0
            or not close_timeout > 0
            or not queue_size >= 1
            or not max_message_bytes >= 1
        ):
            raise ValueError(
                "send_timeout, close_timeout, queue_size and max_message_bytes must be "
                "positive, e.g. send_timeout=5.0, close_timeout=10.0, queue_size=256, "
                "max_message_bytes=65536."
            )
        for name, cap in (
            ("max_connections", max_connections),
            ("max_connections_per_user", max_connections_per_user),
        ):
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None, got {cap!r}.")
        self.max_connections = max_connections
        self.max_connections_per_user = max_connections_per_user
        self._per_user: dict[str, int] = {}  # user id -> connections (handshakes included)
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.send_timeout = send_timeout
        self.queue_size = queue_size
        self.max_message_bytes = max_message_bytes
        self.close_timeout = close_timeout
        self._connections: dict[str, Connection] = {}
        self._handshaking: set[str] = set()  # ids between the id check and registration
        self._closers: set[asyncio.Task[None]] = set()  # referenced until they finish
        self._watchdog: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        self._batch: tuple[asyncio.AbstractEventLoop, list[Connection]] | None = None  # _flush
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
        """Close every connection with 1001 and stop the broker (call it at shutdown).

        Waits for the close frames (each at most ``close_timeout``); cancelling ``stop``
        stops the waiting, not the closing.
        """
        closers = [self._drop(conn, 1001) for conn in list(self._connections.values())]
        if closers:
            await asyncio.shield(asyncio.gather(*closers))
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
        user_id: str | None = None,
    ) -> AsyncIterator[Connection]:
        """Accept ``websocket``, register it, and always unregister it on exit.

        Exit covers a normal return, a disconnect, an error and cancellation.

        Args:
            websocket: The websocket, not yet accepted.
            client_id: The connection's id, unique in this process (random by default).
            rooms: Rooms to join (a string is one room).
            subprotocol: The subprotocol to accept with (`WebSocketAuth.subprotocol`).
            user_id: Whose connection it is, for ``max_connections_per_user``.

        Raises:
            WebSocketRefused: Before accept: 1008 (HTTP 409) if ``client_id`` is already
                connected to this process, 1013 (503) over ``max_connections``, 1008 (429)
                over ``max_connections_per_user``. With fastkit's exception handlers the
                client reads why.
        """
        await self.start()
        client_id = client_id or uuid.uuid4().hex
        if client_id in self._connections or client_id in self._handshaking:
            raise WebSocketRefused(1008, "Client id already connected", status_code=409)
        cap = self.max_connections
        if cap is not None and len(self._connections) + len(self._handshaking) >= cap:
            logger.warning("Refusing websocket %s: %d connections already", client_id, cap)
            raise WebSocketRefused(
                1013,
                "Too many connections; try again later",
                status_code=503,
                headers={"Retry-After": "5"},
            )
        per_user = self.max_connections_per_user
        if (
            user_id is not None
            and per_user is not None
            and self._per_user.get(user_id, 0) >= per_user
        ):
            logger.info("Refusing websocket %s: its user has %d already", client_id, per_user)
            raise WebSocketRefused(1008, "Too many connections for this user", status_code=429)
        rooms = (rooms,) if isinstance(rooms, str) else tuple(rooms)
        # Reserved across the accept: a second handshake with this id is refused meanwhile,
        # and the caps count it.
        self._handshaking.add(client_id)
        if user_id is not None:
            self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        try:
            try:
                await websocket.accept(subprotocol=subprotocol)
            finally:
                self._handshaking.discard(client_id)
            conn = Connection(websocket, client_id, self.queue_size)
            conn.user_id = user_id
            self._connections[client_id] = conn
            record("websocket_connected")
            for room in rooms:
                self.join(conn, room)
        except BaseException:
            self._release_user(user_id)
            raise
        conn.writer = asyncio.create_task(self._write(conn), name=f"fastkit-ws-{client_id}")
        code = 1000
        try:
            yield conn
        except WebSocketDisconnect:
            pass  # the client left: nothing to report
        except Exception:
            code = 1011  # internal error: the handler failed
            raise
        finally:
            self._release_user(user_id)  # first: nothing below may skip it
            closer = self._drop(conn, code, reason="handler_error" if code == 1011 else None)
            # Shielded from anyio cancellation (a cancelled task group or scope), whose
            # every await would otherwise fail at once and lose the close frame; bounded.
            with anyio.CancelScope(shield=True):
                await asyncio.shield(closer)

    def _release_user(self, user_id: str | None) -> None:
        if user_id is None:
            return
        left = self._per_user.get(user_id, 0) - 1
        if left > 0:
            self._per_user[user_id] = left
        else:
            self._per_user.pop(user_id, None)

    # --- registry ----------------------------------------------------------------------------

    def join(self, conn: Connection, room: str) -> None:
        """Add ``conn`` to ``room`` (nothing happens once ``conn`` is closed)."""
        if conn.closed:
            return
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
        connections = self._connections
        if op == "send":
            conn = connections.get(str(envelope.get("to")))
            if conn is not None:
                self._enqueue(conn, frame)
            return
        if op != "broadcast":
            return
        room, excluded = envelope.get("room"), set(envelope.get("exclude") or ())
        if room is None:
            targets = list(connections.values())
        else:
            targets = [c for i in self._rooms.get(room, ()) if (c := connections.get(i))]
        enqueue = self._enqueue
        for conn in targets:
            if conn.id not in excluded:
                enqueue(conn, frame)

    def _enqueue(self, conn: Connection, frame: Frame) -> None:
        """Queue ``frame`` for ``conn``: its idle writer's send runs in the next `_flush`."""
        if conn.closed:
            return
        queue = conn.queue
        if len(queue) >= conn.queue_size:
            logger.warning("Closing websocket %s: its queue is full (it does not read)", conn.id)
            self._drop(conn, CLOSE_TOO_SLOW)
            return
        queue.append(frame)
        waiter = conn._waiter
        if waiter is None or len(queue) > 1:
            return  # the writer is busy and drains the queue, or a _flush comes for it
        if not _INLINE:  # pragma: no cover - every supported Python has the hooks
            conn._waiter = None
            if not waiter.done():
                waiter.set_result(None)
            return
        loop, batch = waiter.get_loop(), self._batch
        if batch is None or batch[0] is not loop:
            batch = self._batch = (loop, [])
            loop.call_soon(self._flush, batch)
        batch[1].append(conn)

    def _flush(self, batch: tuple[asyncio.AbstractEventLoop, list[Connection]]) -> None:
        """Send the frames queued since the last call to idle writers, without waking them.

        A loop callback, once per batch of `_enqueue` calls: each send runs right here as
        its connection's writer task (`asyncio.current_task()` is that task, its context
        is the writer's), and most end without waiting, as the socket takes the frame. A
        send that has to wait is handed to the writer, which carries it on and drains the
        rest of the queue; the watchdog times it from now.
        """
        if self._batch is batch:
            self._batch = None
        loop, connections = batch
        for conn in connections:
            waiter, writer, context = conn._waiter, conn.writer, conn._context
            if waiter is None or waiter.done() or writer is None or context is None:
                continue  # busy, or gone
            queue, send = conn.queue, conn.websocket.send
            while queue and not conn.closed:
                kind, payload = queue.popleft()
                coro = send({"type": "websocket.send", kind: payload})
                done = failed = False
                try:
                    _enter_task(loop, writer)
                except RuntimeError:  # pragma: no cover - a task runs: let the writer do it
                    queue.appendleft((kind, payload))
                    coro.close()
                    conn._waiter = None
                    waiter.set_result(None)
                    break
                try:
                    yielded = context.run(coro.send, None)
                except StopIteration:
                    done = True
                except Exception:
                    failed = True
                finally:
                    _leave_task(loop, writer)
                if done:
                    continue
                if failed:  # gone without a close frame, or closed meanwhile
                    self._drop(conn, 1006, send=False)
                    break
                conn._send_started = loop.time()
                conn._waiter = None
                waiter.set_result(_Resumed(context, coro, started=True, yielded=yielded))
                break

    async def _write(self, conn: Connection) -> None:
        """The writer task: carry on sends that had to wait, drain the queue, then idle.

        Each send runs in the same context (``conn._context``), whether `_flush` or this
        task runs it. No timer per send: the watchdog (`_watch`) drops the connection once
        a send is older than ``send_timeout``.
        """
        loop = asyncio.get_running_loop()
        self._watch_sends(loop)
        context = conn._context = contextvars.copy_context()
        send, queue, clock = conn.websocket.send, conn.queue, loop.time
        resumed: _Resumed | None = None
        try:
            while True:
                if resumed is None:
                    if not queue:
                        waiter = conn._waiter = loop.create_future()
                        try:
                            resumed = await waiter
                        except asyncio.CancelledError as cancelled:
                            handed = None
                            if waiter.done() and not waiter.cancelled():
                                handed = waiter.result()
                            if handed is None or conn.closed:
                                if handed is not None:
                                    handed.close()
                                raise
                            # Cancelled as _flush handed a send over: the send gets it.
                            handed.throw = cancelled
                            resumed = handed
                        continue
                    kind, payload = queue.popleft()
                    conn._send_started = clock()
                    resumed = _Resumed(context, send({"type": "websocket.send", kind: payload}))
                try:
                    await resumed
                except Exception:
                    # Gone without a close frame, or closed meanwhile: drop it.
                    self._drop(conn, 1006, send=False)
                    return
                resumed = conn._send_started = None
        except asyncio.CancelledError:
            pass

    def _watch_sends(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have the send watchdog tick on ``loop`` (one timer per manager, not per send)."""
        watchdog = self._watchdog
        if watchdog is None or watchdog[0] is not loop or watchdog[1].cancelled():
            # A send is dropped between send_timeout and 1.25 x send_timeout after it began.
            handle = loop.call_later(self.send_timeout / 4, self._watch, loop)
            self._watchdog = (loop, handle)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop the connections whose send began more than ``send_timeout`` ago (1011)."""
        self._watchdog = None
        deadline = loop.time() - self.send_timeout
        late = [
            conn
            for conn in self._connections.values()
            if conn._send_started is not None and conn._send_started <= deadline
        ]
        for conn in late:
            logger.warning("Closing websocket %s: a send timed out", conn.id)
            self._drop(conn, CLOSE_SEND_TIMEOUT, reason="send_timeout")
        if self._connections:  # else the next connection's writer starts it again
            self._watch_sends(loop)

    def _drop(
        self, conn: Connection, code: int, *, send: bool = True, reason: str | None = None
    ) -> asyncio.Task[None]:
        """Unregister ``conn`` now; return the task that stops its writer and closes it.

        Safe to call again: later calls return the first call's task. The close frame
        is sent from that task, which nobody cancels: a client that stopped reading may
        only take it once it reads again (the server's send waits meanwhile), up to
        ``close_timeout``. The handler, woken through ``conn.dropped``, waits for it in
        `connect` before returning, so the server does not cut the socket first.
        """
        if conn.closer is not None:
            return conn.closer
        record("websocket_disconnected")
        reason = reason or _DROP_REASONS.get(code)
        if reason is not None:
            record("websocket_dropped", reason)
        conn.closed = True
        conn.close_code = code
        conn.dropped.set()
        conn.queue.clear()  # never sent now
        if self._connections.get(conn.id) is conn:
            del self._connections[conn.id]
        for room in list(conn.rooms):
            self.leave(conn, room)
        writer = conn.writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        closer = asyncio.get_running_loop().create_task(
            self._finish_close(conn, code, send, writer), name=f"fastkit-ws-close-{conn.id}"
        )
        conn.closer = closer
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)
        return closer

    async def _finish_close(
        self, conn: Connection, code: int, send: bool, writer: asyncio.Task[None] | None
    ) -> None:
        if writer is not None and not writer.done():
            await asyncio.wait({writer})  # it was cancelled, or is returning
        websocket = conn.websocket
        if send and websocket.client_state == WebSocketState.CONNECTED:
            try:
                await _with_timeout(websocket.close(code=code), self.close_timeout)
            except (TimeoutError, asyncio.TimeoutError):
                logger.info("Websocket %s did not take its close frame in time", conn.id)
            except Exception:
                pass  # gone meanwhile: nothing to close

    async def _close(self, conn: Connection, code: int) -> None:
        """`_drop`, then wait for the close (cancelling this wait leaves the close going)."""
        await asyncio.shield(self._drop(conn, code))

    # --- receiving ---------------------------------------------------------------------------

    async def receive_json(self, conn: Connection) -> Any:
        """The next JSON message from ``conn``.

        A malformed message (not JSON, or nested too deeply to parse) is answered with an
        error frame ``{"type": "error", "error": "Malformed JSON"}`` and skipped (the
        connection stays);
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
            except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: too deep
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
