"""What docs/websocket.md claims, run against its snippets."""

import asyncio
import datetime
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect, WebSocketState

from fastkit.auth import JWTAuth, RedisRevocationStore, TokenService
from fastkit.websocket import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_SEND_TIMEOUT,
    CLOSE_TOO_SLOW,
    ConnectionManager,
    MemoryBroker,
    RedisBroker,
    WebSocketAuth,
    websocket_token,
)
from tests.docs._snippets import load, page

PAGE = page("websocket.md")
FLAT_PAGE = " ".join(PAGE.split())  # the prose, with its line breaks undone
REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")

MALFORMED = {"type": "error", "error": "Malformed JSON"}


def in_page(body: Any) -> bool:
    """True if ``body`` is printed on the page as one-line JSON."""
    return json.dumps(body) in PAGE


def refusal(c: TestClient, url: str, **kwargs: Any) -> WebSocketDisconnect:
    """The close that refuses a handshake (the socket is never accepted)."""
    with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect(url, **kwargs):
        pass
    return refused.value


# --- websocket_chat.py: rooms, broadcast, iter_json --------------------------------------------


@pytest.fixture
def chat() -> Iterator[TestClient]:
    with TestClient(load("websocket_chat").app) as c:
        yield c


def rooms_become(chat: TestClient, expected: dict[str, int], timeout: float = 5.0) -> None:
    """Poll ``/rooms``: a closed client's handler unregisters it on the server's own time."""
    deadline = time.monotonic() + timeout
    while (rooms := chat.get("/rooms").json()) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rooms == expected


def test_chat_room(chat: TestClient) -> None:
    with chat.websocket_connect("/ws/lobby?name=ann") as ann:
        with chat.websocket_connect("/ws/lobby?name=bob") as bob:
            joined = ann.receive_json()
            assert joined == {"type": "joined", "name": "bob"}
            assert in_page(joined)
            assert chat.get("/rooms").json() == {"lobby": 2}

            bob.send_json({"text": "hi"})
            said = {"type": "message", "name": "bob", "data": {"text": "hi"}}
            assert ann.receive_json() == bob.receive_json() == said  # the sender too
            assert in_page(said)
            assert '`{"text": "hi"}`' in PAGE
        left = ann.receive_json()
        assert left == {"type": "left", "name": "bob"}
        assert f"`{json.dumps(left)}`" in PAGE
        rooms_become(chat, {"lobby": 1})
        assert '`{"lobby": 1}`' in PAGE
    rooms_become(chat, {})  # a room exists while it has clients


def test_rooms_are_separate(chat: TestClient) -> None:
    with (
        chat.websocket_connect("/ws/a?name=ann") as ann,
        chat.websocket_connect("/ws/b?name=bob") as bob,
    ):
        bob.send_json("only b")
        assert bob.receive_json() == {"type": "message", "name": "bob", "data": "only b"}
        ann.send_json("only a")
        assert ann.receive_json() == {"type": "message", "name": "ann", "data": "only a"}
        assert chat.get("/rooms").json() == {"a": 1, "b": 1}


def test_malformed_json_is_answered_and_the_connection_stays(chat: TestClient) -> None:
    with chat.websocket_connect("/ws/lobby") as ws:
        ws.send_text("{not json")
        assert ws.receive_json() == MALFORMED
        assert in_page(MALFORMED)
        ws.send_bytes(b'{"text": "binary frames are parsed too"}')
        assert ws.receive_json()["data"] == {"text": "binary frames are parsed too"}


def test_oversized_message_closes_with_1009(chat: TestClient) -> None:
    with chat.websocket_connect("/ws/lobby") as ws:
        ws.send_text(json.dumps("x" * (64 * 1024)))  # 64 KiB + the quotes
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009 == CLOSE_MESSAGE_TOO_BIG
    assert "64 KiB" in PAGE
    assert chat.get("/rooms").json() == {}


def test_memory_broker_is_the_default() -> None:
    assert isinstance(load("websocket_chat").manager.broker, MemoryBroker)


@pytest.mark.parametrize(
    "options",
    [{"send_timeout": 0}, {"queue_size": 0}, {"max_message_bytes": 0}, {"close_timeout": 0}],
    ids=["send_timeout", "queue_size", "max_message_bytes", "close_timeout"],
)
def test_options_must_be_positive(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ConnectionManager(**options)


def test_documented_defaults() -> None:
    manager = ConnectionManager()
    assert (manager.send_timeout, manager.queue_size, manager.max_message_bytes) == (
        5.0,
        256,
        64 * 1024,
    )
    assert manager.close_timeout == 10.0
    assert "close_timeout=10.0" in PAGE
    assert "`close_timeout` (10 s)" in PAGE


# --- concurrent delivery, with stand-in sockets ------------------------------------------------


class FakeSocket:
    """Stands in for a Starlette WebSocket: records frames, and can stall or fail on send."""

    def __init__(self, *, stall: bool = False, fail: bool = False) -> None:
        self.client_state = WebSocketState.CONNECTING
        self.frames: list[tuple[str, str | bytes]] = []
        self.close_code: int | None = None
        self.stall, self.fail = stall, fail

    async def accept(self, subprotocol: str | None = None) -> None:
        self.client_state = WebSocketState.CONNECTED

    async def _send(self, kind: str, data: str | bytes) -> None:
        if self.fail:
            raise RuntimeError("connection reset by peer")
        if self.stall:
            await asyncio.Event().wait()  # a client that never reads: its TCP buffer is full
        self.frames.append((kind, data))

    async def send_text(self, data: str) -> None:
        await self._send("text", data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send("bytes", data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.close_code = code
        self.client_state = WebSocketState.DISCONNECTED


async def settle() -> None:
    """Let the writer tasks run."""
    for _ in range(5):
        await asyncio.sleep(0.01)


def test_a_client_that_does_not_read_is_closed_with_1008() -> None:
    async def scenario() -> None:
        manager = ConnectionManager(queue_size=2, send_timeout=60)
        slow, fine = FakeSocket(stall=True), FakeSocket()
        async with (
            manager.connect(slow, client_id="slow"),  # type: ignore[arg-type]
            manager.connect(fine, client_id="fine"),  # type: ignore[arg-type]
        ):
            for n in range(4):  # one in its send, two queued, the fourth overflows
                await manager.broadcast(str(n))
                await settle()
            await settle()
            assert slow.close_code == 1008 == CLOSE_TOO_SLOW
            assert manager.clients() == ["fine"]
            assert fine.frames == [("text", "0"), ("text", "1"), ("text", "2"), ("text", "3")]

    asyncio.run(scenario())


def test_a_send_over_send_timeout_closes_with_1011() -> None:
    async def scenario() -> None:
        manager = ConnectionManager(send_timeout=0.01)
        stalled, fine = FakeSocket(stall=True), FakeSocket()
        async with (
            manager.connect(stalled, client_id="stalled"),  # type: ignore[arg-type]
            manager.connect(fine, client_id="fine"),  # type: ignore[arg-type]
        ):
            await manager.broadcast("hello")  # returns at once
            assert len(manager) == 2
            await settle()
            assert stalled.close_code == 1011 == CLOSE_SEND_TIMEOUT
            assert fine.frames == [("text", "hello")]
            assert len(manager) == 1

    asyncio.run(scenario())


def test_a_dead_client_is_dropped_on_its_first_failed_send() -> None:
    async def scenario() -> None:
        manager = ConnectionManager()
        dead, fine = FakeSocket(fail=True), FakeSocket()
        async with (
            manager.connect(dead, client_id="dead", rooms=["r"]) as conn,  # type: ignore[arg-type]
            manager.connect(fine, client_id="fine", rooms=["r"]),  # type: ignore[arg-type]
        ):
            await manager.broadcast("one", room="r")
            await settle()
            assert manager.clients("r") == ["fine"]
            assert conn.rooms == set()
            assert dead.close_code is None  # no close frame to a dead connection
            await manager.broadcast("two", room="r")
            await manager.send("dead", "three")  # not connected any more: nothing happens
            await settle()
            assert fine.frames == [("text", "one"), ("text", "two")]

    asyncio.run(scenario())


def test_message_types_and_personal_send() -> None:
    async def scenario() -> None:
        manager = ConnectionManager()
        one, two = FakeSocket(), FakeSocket()
        async with (
            manager.connect(one, client_id="1") as conn,  # type: ignore[arg-type]
            manager.connect(two, client_id="2"),  # type: ignore[arg-type]
        ):
            manager.join(conn, "lobby")
            manager.leave(conn, "nowhere")  # no error
            await manager.send("1", "text")
            await manager.send("1", b"\x00\x01")
            await manager.send("1", {"type": "poke"})
            at = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
            await manager.send("1", {"at": at})
            await manager.broadcast("hi", room="lobby", exclude=["1"])
            await manager.send("nobody", "lost")
            await settle()
            assert one.frames == [
                ("text", "text"),
                ("bytes", b"\x00\x01"),
                ("text", '{"type":"poke"}'),
                ("text", '{"at":"2024-05-01 12:00:00+00:00"}'),
            ]
            assert two.frames == []
            assert manager.rooms() == ["lobby"]
            assert '(`{"type":"poke"}`' in PAGE
            await manager.stop()
            assert (one.close_code, two.close_code) == (1001, 1001)
            assert len(manager) == 0

    asyncio.run(scenario())


# --- websocket_auth.py -------------------------------------------------------------------------


@pytest.fixture
def snippet() -> ModuleType:
    return load("websocket_auth")


@pytest.fixture
def c(snippet: ModuleType) -> Iterator[TestClient]:
    with TestClient(snippet.app) as client:
        yield client


def token(snippet: ModuleType, sub: str = "1") -> str:
    access: str = snippet.tokens.create_access_token(sub)
    return access


HELLO = {"type": "hello", "user": "alice"}


def test_token_in_the_subprotocol(snippet: ModuleType, c: TestClient) -> None:
    with c.websocket_connect("/ws", subprotocols=["bearer", token(snippet)]) as ws:
        assert ws.accepted_subprotocol == "bearer"  # echoed, as browsers require
        assert ws.receive_json() == HELLO
    assert 'new WebSocket(url, ["bearer", token])' in PAGE


def test_token_alone_in_the_subprotocol_is_echoed(snippet: ModuleType, c: TestClient) -> None:
    alone = token(snippet)
    with c.websocket_connect("/ws", subprotocols=[alone]) as ws:
        assert ws.accepted_subprotocol == alone
        assert ws.receive_json() == HELLO


def test_token_in_the_query_or_the_cookie(snippet: ModuleType, c: TestClient) -> None:
    with c.websocket_connect(f"/ws?token={token(snippet)}") as ws:
        assert ws.accepted_subprotocol is None
        assert ws.receive_json() == HELLO
    c.cookies.set("access_token", token(snippet, "2"))
    with c.websocket_connect("/ws") as ws:
        assert ws.accepted_subprotocol is None
        assert ws.receive_json() == {"type": "hello", "user": "bob"}


def test_personal_send_from_an_http_route(snippet: ModuleType, c: TestClient) -> None:
    as_bob = {"Authorization": f"Bearer {token(snippet, '2')}"}
    with c.websocket_connect("/ws", subprotocols=["bearer", token(snippet)]) as alice:
        alice.receive_json()
        poke = c.post("/users/1/poke", headers=as_bob)
        assert (poke.status_code, poke.json()) == (202, {"online": True})
        assert alice.receive_json() == {"type": "poke", "from": "bob"}
    assert c.post("/users/1/poke", headers=as_bob).json() == {"online": False}


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda s: None, "Missing token"),
        (lambda s: "not-a-jwt", "Invalid or expired token"),
        (
            lambda s: TokenService(secret="x" * 32).create_access_token("1"),
            "Invalid or expired token",
        ),
        (lambda s: token(s, "9"), "Invalid or expired token"),
        (lambda s: s.tokens.create_refresh_token("1"), "Invalid or expired token"),
    ],
    ids=["missing", "malformed", "forged", "unknown-user", "refresh-token"],
)
def test_refused_before_accept_with_1008(
    snippet: ModuleType, c: TestClient, make_token: Any, reason: str
) -> None:
    value = make_token(snippet)
    kwargs = {} if value is None else {"subprotocols": ["bearer", value]}
    refused = refusal(c, "/ws", **kwargs)
    assert (refused.code, refused.reason) == (1008, reason)
    assert f"`{reason}`" in FLAT_PAGE


def test_inactive_user_is_refused_with_1008() -> None:
    tokens = TokenService(secret="s" * 32)
    auth = JWTAuth(tokens, user_loader=lambda claims: "carol", is_active=lambda user: False)
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket, who: Annotated[WebSocketAuth, Depends(websocket_token(auth))]
    ) -> None:
        await websocket.accept()

    with TestClient(app) as c:
        refused = refusal(c, f"/ws?token={tokens.create_access_token('3')}")
    assert (refused.code, refused.reason) == (1008, "Inactive user")
    assert "(`Inactive user`)" in PAGE


def test_revocation_store_down_is_1011(
    snippet: ModuleType, c: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisRevocationStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
    snippet.auth.revocation = store
    try:
        with caplog.at_level(logging.ERROR, logger="fastkit.auth"):
            refused = refusal(c, "/ws", subprotocols=["bearer", token(snippet)])
        assert refused.code == 1011
    finally:
        c.portal.call(store.aclose)  # type: ignore[union-attr]


def test_one_connection_per_client_id(snippet: ModuleType, c: TestClient) -> None:
    protocols = ["bearer", token(snippet)]
    with c.websocket_connect("/ws", subprotocols=protocols) as first:
        assert first.receive_json() == HELLO
        # Refused (1008) at the handshake, before accept.
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            c.websocket_connect("/ws", subprotocols=protocols),
        ):
            pass
        assert refused.value.code == 1008
        assert refused.value.reason == "client id already connected"
        assert snippet.manager.clients() == ["1"]
        c.post("/users/1/poke", headers={"Authorization": f"Bearer {token(snippet, '2')}"})
        assert first.receive_json() == {"type": "poke", "from": "bob"}  # the first one stays
    assert "refused at the handshake with close code `1008`" in FLAT_PAGE


# --- websocket_redis.py ------------------------------------------------------------------------


def test_redis_broker_is_built_from_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/3")
    snippet = load("websocket_redis")
    assert isinstance(snippet.broker, RedisBroker)
    assert snippet.manager.broker is snippet.broker
    assert snippet.broker.channel == "fastkit:websocket"
    assert '`"fastkit:websocket"`' in PAGE


def test_redis_outage_drops_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        broker = RedisBroker("redis://127.0.0.1:1/0")  # nothing listens on port 1
        try:
            await broker.publish({"op": "broadcast", "message": {"kind": "text", "value": "x"}})
        finally:
            await broker.stop()

    with caplog.at_level(logging.WARNING, logger="fastkit.websocket"):
        asyncio.run(scenario())  # does not raise
    assert any("Redis unreachable: websocket message dropped" in m for m in caplog.messages)
    assert "`Redis unreachable: websocket message dropped`" in PAGE


@pytest.mark.skipif(REDIS_URL is None, reason="FASTKIT_TEST_REDIS_URL is not set")
def test_redis_reaches_clients_of_another_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", str(REDIS_URL))
    worker_a, worker_b = load("websocket_redis"), load("websocket_redis")
    worker_a.broker.channel = worker_b.broker.channel = f"fastkit-docs-{uuid.uuid4().hex}"
    with (
        TestClient(worker_a.app) as a,
        TestClient(worker_b.app) as b,
        a.websocket_connect("/ws/lobby") as ann,
        b.websocket_connect("/ws/lobby") as bob,
    ):
        ann.send_json({"text": "hi"})
        ann_id = worker_a.manager.clients()[0]
        expected = {"from": ann_id, "data": {"text": "hi"}}
        assert bob.receive_json() == expected
        assert ann.receive_json() == expected
        bob_id = worker_b.manager.clients()[0]
        assert a.portal is not None
        a.portal.call(worker_a.manager.send, bob_id, {"type": "poke"})
        assert bob.receive_json() == {"type": "poke"}
