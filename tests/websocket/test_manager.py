"""fastkit.websocket.ConnectionManager in-process, without a server.

Most tests drive a real FastAPI app with TestClient. Each enters ``with TestClient(app) as
client``, so the app's websockets and the test's ``client.portal.call(...)`` share one event
loop (the manager's writer tasks live there).
TestClient's ``receive_*`` has no timeout, so a test never waits for a frame that should
not come: it sends the client a personal marker after it, and expects the marker first.
Once a client's ``with`` block is left, TestClient has cancelled its endpoint: code after
``async with manager.connect`` may not have run, so the tests check the manager's state,
which ``connect`` updates before its first await on the way out.

The delivery and lifecycle tests at the end drive the manager step by step on server-less
Starlette websockets (``tests/websocket/peers.py``): stalled, timed-out and vanished clients,
duplicate ids connecting at once, and the bugs that used to slip through.

No ``from __future__ import annotations``: the endpoints are built inside a function.
"""

import asyncio
import contextlib
import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.exceptions import WebSocketException
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from fastkit.websocket import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_SEND_TIMEOUT,
    CLOSE_TOO_SLOW,
    Connection,
    ConnectionManager,
    MemoryBroker,
)
from tests.websocket.peers import Peer, eventually, serve, sessions

MALFORMED = {"type": "error", "error": "Malformed JSON"}
MARKER = "--marker--"


@dataclass
class Harness:
    """The app, its manager, and the connections its endpoints registered."""

    app: FastAPI
    manager: ConnectionManager
    conns: dict[str, Connection] = field(default_factory=dict)


def build(manager: ConnectionManager | None = None) -> Harness:
    """An app whose ``/ws/{id}?rooms=a,b`` echoes each JSON message back as ``{"echo": m}``."""
    manager = manager if manager is not None else ConnectionManager()
    harness = Harness(FastAPI(), manager)
    app = harness.app

    @app.websocket("/ws/{client_id}")
    async def session(websocket: WebSocket, client_id: str, rooms: str = "") -> None:
        async with manager.connect(
            websocket, client_id=client_id, rooms=[r for r in rooms.split(",") if r]
        ) as conn:
            harness.conns[client_id] = conn
            async for message in manager.iter_json(conn):
                await manager.send(conn.id, {"echo": message})

    @app.websocket("/cancel/{client_id}")
    async def cancelled(websocket: WebSocket, client_id: str) -> None:
        entered = asyncio.Event()

        async def body() -> None:
            async with manager.connect(websocket, client_id=client_id, rooms=["r"]):
                entered.set()
                await asyncio.sleep(60)  # cancelled long before

        task = asyncio.create_task(body())
        await asyncio.wait_for(entered.wait(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return harness


@contextlib.contextmanager
def joined(client: TestClient, path: str) -> Iterator[WebSocketTestSession]:
    """A websocket on ``path``, once the manager has registered it (one echo round trip)."""
    with client.websocket_connect(path) as ws:
        ws.send_json("hello")
        assert ws.receive_json() == {"echo": "hello"}
        yield ws


def on_loop(client: TestClient, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``function`` (sync or async) in the app's event loop and return its result."""
    assert client.portal is not None
    return client.portal.call(lambda: function(*args, **kwargs))


def frame(ws: WebSocketTestSession) -> tuple[str, Any]:
    """The next frame the client gets: ``("text", str)`` or ``("bytes", bytes)``."""
    message = ws.receive()
    assert message["type"] == "websocket.send", message
    if message.get("text") is not None:
        return "text", message["text"]
    return "bytes", message["bytes"]


def assert_marker_next(client: TestClient, manager: ConnectionManager, **sockets: Any) -> None:
    """Send each client a marker: the next frame each one gets must be it (nothing else came)."""
    for client_id in sockets:
        on_loop(client, manager.send, client_id, MARKER)
    for client_id, ws in sockets.items():
        assert (client_id, frame(ws)) == (client_id, ("text", MARKER))


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"send_timeout": 0}, id="send_timeout-zero"),
        pytest.param({"send_timeout": -1.5}, id="send_timeout-negative"),
        pytest.param({"queue_size": 0}, id="queue_size-zero"),
        pytest.param({"queue_size": -8}, id="queue_size-negative"),
        pytest.param({"max_message_bytes": 0}, id="max_message_bytes-zero"),
        pytest.param({"max_message_bytes": -1}, id="max_message_bytes-negative"),
        pytest.param({"send_timeout": float("nan")}, id="send_timeout-nan"),
        pytest.param({"close_timeout": 0}, id="close_timeout-zero"),
        pytest.param({"close_timeout": float("nan")}, id="close_timeout-nan"),
    ],
)
def test_bad_options_raise_value_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ConnectionManager(**options)


def test_defaults() -> None:
    manager = ConnectionManager()
    assert isinstance(manager.broker, MemoryBroker)
    assert (
        manager.send_timeout,
        manager.queue_size,
        manager.max_message_bytes,
        manager.close_timeout,
    ) == (5.0, 256, 64 * 1024, 10.0)
    assert len(manager) == 0
    assert manager.clients() == []
    assert manager.rooms() == []


# --- registry: rooms, clients, len -------------------------------------------------------


def test_rooms_join_leave_clients_and_len() -> None:
    harness = build()
    manager = harness.manager
    with (
        TestClient(harness.app) as client,
        joined(client, "/ws/ann?rooms=a,b"),
        joined(client, "/ws/bob?rooms=b"),
    ):
        ann, bob = harness.conns["ann"], harness.conns["bob"]
        assert len(manager) == 2
        assert sorted(manager.clients()) == ["ann", "bob"]
        assert manager.rooms() == ["a", "b"]
        assert manager.clients("a") == ["ann"]
        assert manager.clients("b") == ["ann", "bob"]
        assert manager.clients("nowhere") == []

        on_loop(client, manager.join, bob, "c")
        on_loop(client, manager.join, bob, "c")  # twice is once
        on_loop(client, manager.leave, ann, "a")  # its last member: the room is gone
        on_loop(client, manager.leave, ann, "c")  # not a member: no error
        on_loop(client, manager.leave, ann, "nowhere")
        assert manager.rooms() == ["b", "c"]
        assert manager.clients("c") == ["bob"]
        assert (ann.rooms, bob.rooms) == ({"b"}, {"b", "c"})
        assert repr(bob) == "Connection('bob', rooms=['b', 'c'])"

        with joined(client, "/ws/cat"):
            assert len(manager) == 3
            assert manager.rooms() == ["b", "c"]  # no room: in no room
        assert (len(manager), manager.rooms()) == (2, ["b", "c"])
    # Leaving the ``with`` waits for the endpoints: both have left every room.
    assert (len(manager), manager.clients(), manager.rooms()) == (0, [], [])


def test_client_ids_are_generated_when_not_given() -> None:
    manager = ConnectionManager()
    app = FastAPI()
    ids: list[str] = []

    @app.websocket("/ws")
    async def session(websocket: WebSocket) -> None:
        async with manager.connect(websocket) as conn:
            ids.append(conn.id)
            async for message in manager.iter_json(conn):
                await manager.send(conn.id, message)

    with TestClient(app) as client:
        for _ in range(2):
            with client.websocket_connect("/ws") as ws:
                ws.send_json("hi")
                assert ws.receive_text() == "hi"
    assert len(ids) == 2
    assert ids[0] != ids[1]
    assert all(len(i) == 32 for i in ids)


# --- sending -----------------------------------------------------------------------------

MESSAGES = [
    pytest.param("héllo wörld", ("text", "héllo wörld"), id="str"),
    pytest.param("", ("text", ""), id="empty-str"),
    pytest.param(b"\x00\xffbinary", ("bytes", b"\x00\xffbinary"), id="bytes"),
    pytest.param(bytearray(b"array"), ("bytes", b"array"), id="bytearray"),
    pytest.param(memoryview(b"view"), ("bytes", b"view"), id="memoryview"),
    pytest.param(
        {"text": "é", "n": [1, 2.5, None, True]},
        ("json", {"text": "é", "n": [1, 2.5, None, True]}),
        id="dict",
    ),
    pytest.param([1, "two"], ("json", [1, "two"]), id="list"),
    pytest.param(42, ("json", 42), id="int"),
    pytest.param(None, ("json", None), id="none"),
    pytest.param(
        {"at": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)},
        ("json", {"at": "2024-05-01 12:00:00+00:00"}),
        id="datetime-as-str",
    ),
]


def decoded(got: tuple[str, Any], kind: str) -> tuple[str, Any]:
    if kind == "json":
        assert got[0] == "text"
        return "json", json.loads(got[1])
    return got


@pytest.mark.parametrize(("message", "expected"), MESSAGES)
def test_personal_send_reaches_only_its_client(message: Any, expected: tuple[str, Any]) -> None:
    harness = build()
    with (
        TestClient(harness.app) as client,
        joined(client, "/ws/ann?rooms=a") as ann,
        joined(client, "/ws/bob?rooms=a") as bob,
    ):
        on_loop(client, harness.manager.send, "ann", message)
        on_loop(client, harness.manager.send, "nobody", message)  # unknown id: no error
        assert decoded(frame(ann), expected[0]) == expected
        assert_marker_next(client, harness.manager, ann=ann, bob=bob)


@pytest.mark.parametrize(("message", "expected"), MESSAGES)
def test_broadcast_reaches_every_client(message: Any, expected: tuple[str, Any]) -> None:
    harness = build()
    with (
        TestClient(harness.app) as client,
        joined(client, "/ws/ann?rooms=a") as ann,
        joined(client, "/ws/bob") as bob,
    ):
        on_loop(client, harness.manager.broadcast, message)
        assert decoded(frame(ann), expected[0]) == expected
        assert decoded(frame(bob), expected[0]) == expected


@pytest.mark.parametrize(
    ("room", "exclude", "receivers"),
    [
        pytest.param(None, None, {"ann", "bob", "cat"}, id="everyone"),
        pytest.param(None, [], {"ann", "bob", "cat"}, id="everyone-empty-exclude"),
        pytest.param("a", None, {"ann"}, id="room-a"),
        pytest.param("b", None, {"ann", "bob"}, id="room-b"),
        pytest.param("b", ["ann"], {"bob"}, id="room-b-exclude-ann"),
        pytest.param("b", ("ann", "bob"), set(), id="room-b-exclude-all"),
        pytest.param(None, ["bob", "cat"], {"ann"}, id="everyone-exclude-two"),
        pytest.param(None, {"cat"}, {"ann", "bob"}, id="exclude-a-set"),
        pytest.param(None, ["nobody"], {"ann", "bob", "cat"}, id="exclude-unknown-id"),
        pytest.param("empty", None, set(), id="unknown-room"),
        pytest.param("a", ["bob"], {"ann"}, id="exclude-outside-the-room"),
    ],
)
def test_broadcast_to_room_with_exclude(
    room: str | None, exclude: list[str] | None, receivers: set[str]
) -> None:
    harness = build()
    with (
        TestClient(harness.app) as client,
        joined(client, "/ws/ann?rooms=a,b") as ann,
        joined(client, "/ws/bob?rooms=b") as bob,
        joined(client, "/ws/cat") as cat,
    ):
        sockets = {"ann": ann, "bob": bob, "cat": cat}
        on_loop(client, harness.manager.broadcast, {"to": room}, room=room, exclude=exclude)
        for client_id in sorted(receivers):
            assert decoded(frame(sockets[client_id]), "json") == ("json", {"to": room})
        assert_marker_next(client, harness.manager, **sockets)


def test_messages_to_one_client_keep_their_order() -> None:
    harness = build()
    with TestClient(harness.app) as client, joined(client, "/ws/ann?rooms=a") as ann:
        for n in range(50):
            if n % 2:
                on_loop(client, harness.manager.broadcast, n, room="a")
            else:
                on_loop(client, harness.manager.send, "ann", n)
        assert [int(frame(ann)[1]) for _ in range(50)] == list(range(50))


# --- receiving ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "echo"),
    [
        pytest.param('{"a": [1, "é"]}', {"a": [1, "é"]}, id="text-object"),
        pytest.param(b'{"a": 1}', {"a": 1}, id="bytes-object"),
        pytest.param("[]", [], id="text-array"),
        pytest.param('"just a string"', "just a string", id="text-string"),
        pytest.param("null", None, id="null"),
    ],
)
def test_receive_json_parses_text_and_bytes(sent: str | bytes, echo: Any) -> None:
    harness = build()
    with TestClient(harness.app) as client, joined(client, "/ws/ann") as ann:
        if isinstance(sent, bytes):
            ann.send_bytes(sent)
        else:
            ann.send_text(sent)
        assert ann.receive_json() == {"echo": echo}


@pytest.mark.parametrize(
    "malformed",
    [
        pytest.param("{not json", id="broken-object"),
        pytest.param("", id="empty-text"),
        pytest.param("[1, 2", id="unterminated-array"),
        pytest.param(b"", id="empty-bytes"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8-bytes"),
        pytest.param('{"a": 1} trailing', id="trailing-garbage"),
    ],
)
def test_malformed_json_gets_an_error_frame_and_the_connection_stays(
    malformed: str | bytes,
) -> None:
    harness = build()
    with TestClient(harness.app) as client, joined(client, "/ws/ann?rooms=a") as ann:
        for _ in range(3):  # again and again: never closed for it
            if isinstance(malformed, bytes):
                ann.send_bytes(malformed)
            else:
                ann.send_text(malformed)
            assert ann.receive_json() == MALFORMED
        ann.send_json({"still": "here"})
        assert ann.receive_json() == {"echo": {"still": "here"}}
        assert harness.manager.clients("a") == ["ann"]


LIMIT = 32


@pytest.mark.parametrize(
    ("sent", "closed"),
    [
        pytest.param('"' + "x" * (LIMIT - 2) + '"', False, id="text-at-the-limit"),
        pytest.param('"' + "x" * (LIMIT - 1) + '"', True, id="text-one-byte-over"),
        pytest.param(b'"' + b"x" * (LIMIT - 2) + b'"', False, id="bytes-at-the-limit"),
        pytest.param(b'"' + b"x" * (LIMIT - 1) + b'"', True, id="bytes-one-byte-over"),
        # 18 characters, 34 bytes in UTF-8: the limit counts bytes.
        pytest.param('"' + "é" * 16 + '"', True, id="multibyte-text-over"),
        pytest.param("x" * 10_000, True, id="far-over-and-malformed"),
    ],
)
def test_oversized_message_closes_with_1009(sent: str | bytes, closed: bool) -> None:
    harness = build(ConnectionManager(max_message_bytes=LIMIT))
    with TestClient(harness.app) as client:
        with joined(client, "/ws/ann?rooms=a") as ann:
            if isinstance(sent, bytes):
                ann.send_bytes(sent)
            else:
                ann.send_text(sent)
            if closed:
                with pytest.raises(WebSocketDisconnect) as refused:
                    ann.receive_json()
                assert refused.value.code == CLOSE_MESSAGE_TOO_BIG == 1009
            else:
                assert ann.receive_json() == {"echo": "x" * (LIMIT - 2)}
        assert (len(harness.manager), harness.manager.rooms()) == (0, [])


# --- lifecycle: errors, cancellation, duplicates, stop -------------------------------------


def test_duplicate_client_id_is_refused_with_1008() -> None:
    harness = build()
    with TestClient(harness.app) as client, joined(client, "/ws/ann?rooms=a") as ann:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws/ann"):
            pass  # pragma: no cover - refused before accept
        assert (refused.value.code, refused.value.reason) == (1008, "Client id already connected")
        # The first connection is untouched.
        assert (len(harness.manager), harness.manager.clients("a")) == (1, ["ann"])
        ann.send_json("still")
        assert ann.receive_json() == {"echo": "still"}
        on_loop(client, harness.manager.broadcast, "all", room="a")
        assert frame(ann) == ("text", "all")
    assert (len(harness.manager), harness.manager.rooms()) == (0, [])


def test_asyncio_cancellation_inside_connect_unregisters_and_closes() -> None:
    harness = build()
    with TestClient(harness.app) as client:
        with (
            client.websocket_connect("/cancel/gone") as ws,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            ws.receive_text()
        assert closed.value.code == 1000
        assert len(harness.manager) == 0
        assert (harness.manager.clients(), harness.manager.rooms()) == ([], [])


def anyio_cancelled_app(manager: ConnectionManager) -> Callable[..., Any]:
    """A raw ASGI app: ``manager.connect`` inside an anyio cancel scope that is cancelled.

    It ends with a close frame of its own (4000), sent on the raw ASGI ``send``, so that the
    client never waits forever whether or not the manager sent its own close first.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        with anyio.CancelScope() as cancel_scope:
            async with manager.connect(websocket, client_id="gone", rooms=["r"]):
                cancel_scope.cancel()  # as when a sibling task of a task group fails
                await anyio.sleep(60)  # cancelled at once
        await send({"type": "websocket.close", "code": 4000, "reason": ""})

    return app


def test_anyio_cancellation_inside_connect_unregisters() -> None:
    manager = ConnectionManager()
    client = TestClient(anyio_cancelled_app(manager))  # no lifespan: not entered
    with client.websocket_connect("/") as ws, pytest.raises(WebSocketDisconnect):
        ws.receive_text()
    assert (len(manager), manager.clients(), manager.rooms()) == (0, [], [])


def test_anyio_cancellation_inside_connect_still_sends_the_close_frame() -> None:
    manager = ConnectionManager()
    client = TestClient(anyio_cancelled_app(manager))
    with client.websocket_connect("/") as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    assert closed.value.code == 1000


def test_stop_closes_every_connection_with_1001_and_the_manager_restarts() -> None:
    harness = build()
    with TestClient(harness.app) as client:
        with joined(client, "/ws/ann?rooms=a") as ann, joined(client, "/ws/bob") as bob:
            on_loop(client, harness.manager.stop)
            assert (len(harness.manager), harness.manager.rooms()) == (0, [])
            for ws in (ann, bob):
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_text()
                assert closed.value.code == 1001
        # A later connection starts the broker again.
        with joined(client, "/ws/cat") as cat:
            on_loop(client, harness.manager.broadcast, "again")
            assert frame(cat) == ("text", "again")


# --- delivery, step by step: stalled, timed-out, vanished clients; races ----------------


@pytest.mark.anyio
async def test_a_client_that_does_not_read_is_closed_with_1008_others_get_everything() -> None:
    manager = ConnectionManager(queue_size=2, send_timeout=60)
    slow, ann, bob = Peer(stall=True), Peer(), Peer()
    async with sessions(manager, slow=slow, ann=ann, bob=bob):
        for n in range(20):
            await manager.broadcast(str(n))  # returns at once, whoever stalls
            await eventually(lambda n=n: len(ann.frames) == len(bob.frames) == n + 1)
        await eventually(lambda: slow.close_code is not None)
        assert slow.close_code == CLOSE_TOO_SLOW == 1008
        assert sorted(manager.clients()) == ["ann", "bob"]
        expected = [str(n) for n in range(20)]
        assert ann.frames == bob.frames == expected
        # One message was in the stalled send, two queued, the fourth overflowed: none went out.
        assert slow.frames == []


@pytest.mark.anyio
async def test_a_send_over_send_timeout_closes_with_1011() -> None:
    manager = ConnectionManager(send_timeout=0.05)
    stuck, ann = Peer(stall=True), Peer()
    async with sessions(manager, stuck=stuck, ann=ann):
        await manager.broadcast({"n": 1})
        await eventually(lambda: stuck.close_code is not None)
        assert stuck.close_code == CLOSE_SEND_TIMEOUT == 1011
        assert manager.clients() == ["ann"]
        assert ann.frames == ['{"n":1}']


@pytest.mark.anyio
async def test_a_vanished_client_is_dropped_on_its_first_failed_send() -> None:
    manager = ConnectionManager()
    gone, ann = Peer(fail=True), Peer()
    async with sessions(manager, gone=gone, ann=ann) as running:
        manager.join(running.conns["gone"], "room")
        await manager.broadcast("hello")
        await eventually(lambda: manager.clients() == ["ann"])
        assert manager.rooms() == []
        assert gone.close_code is None  # no close frame to a dead socket
        assert ann.frames == ["hello"]


@pytest.mark.anyio
async def test_leaving_while_messages_are_queued_ends_cleanly() -> None:
    manager = ConnectionManager(queue_size=100)
    slow = Peer(stall=True)
    async with sessions(manager, slow=slow) as running:
        for n in range(10):
            await manager.broadcast(n)
        slow.leave()
        conn = await asyncio.wait_for(running.tasks["slow"], 10)
        assert conn.closed
        assert len(manager) == 0
        assert conn.writer is not None
        assert conn.writer.done()


@pytest.mark.anyio
async def test_two_concurrent_connects_with_one_id_admit_only_one() -> None:
    manager = ConnectionManager()
    a, b = Peer(), Peer()
    outcomes: list[str] = []

    async def attempt(peer: Peer) -> None:
        try:
            await serve(manager, peer, "ann", rooms=["r"])
        except WebSocketException:
            outcomes.append("refused")
        else:
            outcomes.append("served")

    tasks = [asyncio.create_task(attempt(a)), asyncio.create_task(attempt(b))]
    try:
        await eventually(lambda: a.accepted or b.accepted)
        await asyncio.sleep(0.05)  # both handshakes are past the id check by now
        accepted = [p.accepted for p in (a, b)]
    finally:
        a.leave()
        b.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert sorted(outcomes) == ["refused", "served"]
    assert accepted.count(True) == 1


@pytest.mark.anyio
async def test_join_after_the_manager_closed_the_connection_is_harmless() -> None:
    manager = ConnectionManager(queue_size=1, send_timeout=60)
    slow, ann = Peer(stall=True), Peer()
    async with sessions(manager, slow=slow, ann=ann) as running:
        conn = running.conns["slow"]
        for n in range(3):  # one in its send, one queued, the third overflows
            await manager.broadcast(n)
            await asyncio.sleep(0.01)
        await eventually(lambda: conn.closed and slow.close_code == 1008)
        # The endpoint, still reading a "join" the client sent before it stalled, joins:
        manager.join(conn, "late")
        manager.join(running.conns["ann"], "late")
        await manager.broadcast("to late", room="late")  # KeyError: 'slow'
        await eventually(lambda: "to late" in ann.frames)
        assert manager.clients("late") == ["ann"]


@pytest.mark.anyio
async def test_an_exception_inside_connect_unregisters_and_closes_with_1011() -> None:
    manager = ConnectionManager()
    peer = Peer()
    with pytest.raises(RuntimeError, match="handler failed"):
        async with manager.connect(peer.websocket, client_id="ann", rooms=["r"]):
            raise RuntimeError("handler failed")
    assert (len(manager), manager.rooms()) == (0, [])
    assert peer.close_code == 1011


@pytest.mark.anyio
async def test_stop_can_be_cancelled() -> None:
    manager = ConnectionManager(send_timeout=60)
    slow = Peer(stall=True)
    async with sessions(manager, slow=slow):
        await manager.broadcast("stuck")  # the writer is now inside its send
        await asyncio.sleep(0.01)
        stopping = asyncio.create_task(manager.stop())
        await asyncio.sleep(0)  # stop() runs until it awaits the writer task
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(stopping, 10)


@pytest.mark.anyio
async def test_a_dropped_client_gets_its_close_frame_once_it_reads_again() -> None:
    # Behind a full TCP window the close frame waits like any frame; the handler waits for
    # it (up to close_timeout) rather than return and let the server cut the socket first.
    manager = ConnectionManager(queue_size=1, send_timeout=60, close_timeout=10)
    slow = Peer(stall=True, stall_close=True)
    task = asyncio.create_task(serve(manager, slow, "slow"))
    await eventually(lambda: manager.clients() == ["slow"])
    for n in range(3):  # one in its send, one queued, the third overflows
        await manager.broadcast(n)
        await asyncio.sleep(0.01)
    await eventually(lambda: manager.clients() == [])
    await asyncio.sleep(0.3)
    assert not task.done()  # still owed its close frame
    assert slow.close_code is None
    slow.released.set()  # the client reads again
    await asyncio.wait_for(task, 5)
    assert slow.close_code == CLOSE_TOO_SLOW


@pytest.mark.anyio
async def test_a_client_that_never_reads_again_is_abandoned_after_close_timeout() -> None:
    manager = ConnectionManager(queue_size=1, send_timeout=60, close_timeout=0.2)
    slow = Peer(stall=True, stall_close=True)
    task = asyncio.create_task(serve(manager, slow, "slow"))
    await eventually(lambda: manager.clients() == ["slow"])
    started = asyncio.get_running_loop().time()
    for n in range(3):
        await manager.broadcast(n)
        await asyncio.sleep(0.01)
    conn = await asyncio.wait_for(task, 5)  # the handler ends: the server closes the socket
    assert asyncio.get_running_loop().time() - started < 2
    assert conn.closed
    assert slow.close_code is None  # never sent: the client never read
    assert len(manager) == 0
    slow.released.set()


@pytest.mark.anyio
async def test_a_single_room_given_as_a_string_is_one_room() -> None:
    manager = ConnectionManager()
    peer = Peer()
    async with manager.connect(peer.websocket, client_id="ann", rooms="lobby"):
        assert manager.rooms() == ["lobby"]
        assert manager.clients("lobby") == ["ann"]
    assert manager.rooms() == []
