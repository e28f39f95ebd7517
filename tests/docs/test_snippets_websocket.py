"""The snippets of docs/websocket.md do what the page says they do.

Only what the snippets themselves show: their routes, messages and wiring. The manager's,
the brokers' and websocket_token's behaviour is tested in tests/websocket/.
"""

import os
import time
import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from fastkit.websocket import RedisBroker
from tests.docs._snippets import load

REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")


# --- websocket_chat.py: rooms, join and leave notices, /rooms ------------------------------


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
            assert ann.receive_json() == {"type": "joined", "name": "bob"}
            assert chat.get("/rooms").json() == {"lobby": 2}

            bob.send_json({"text": "hi"})
            said = {"type": "message", "name": "bob", "data": {"text": "hi"}}
            assert ann.receive_json() == bob.receive_json() == said  # the sender too
        assert ann.receive_json() == {"type": "left", "name": "bob"}
        rooms_become(chat, {"lobby": 1})
    rooms_become(chat, {})  # a room exists while it has clients


def test_rooms_are_separate(chat: TestClient) -> None:
    with (
        chat.websocket_connect("/ws/a?name=ann") as ann,
        chat.websocket_connect("/ws/b?name=bob") as bob,
    ):
        bob.send_json("only b")
        assert bob.receive_json() == {"type": "message", "name": "bob", "data": "only b"}
        ann.send_json("only a")  # ann's next frame is her own: nothing came from room b
        assert ann.receive_json() == {"type": "message", "name": "ann", "data": "only a"}
        assert chat.get("/rooms").json() == {"a": 1, "b": 1}


# --- websocket_auth.py: the user id as client id, a personal send from an HTTP route -------


@pytest.fixture
def snippet() -> ModuleType:
    return load("websocket_auth")


def token(snippet: ModuleType, sub: str) -> str:
    access: str = snippet.tokens.create_access_token(sub)
    return access


def test_hello_then_a_poke_from_an_http_route(snippet: ModuleType) -> None:
    as_bob = {"Authorization": f"Bearer {token(snippet, '2')}"}
    with (
        TestClient(snippet.app) as c,
        c.websocket_connect("/ws", subprotocols=["bearer", token(snippet, "1")]) as alice,
    ):
        assert alice.accepted_subprotocol == "bearer"  # echoed, as browsers require
        assert alice.receive_json() == {"type": "hello", "user": "alice"}
        poke = c.post("/users/1/poke", headers=as_bob)
        assert (poke.status_code, poke.json()) == (202, {"online": True})
        assert alice.receive_json() == {"type": "poke", "from": "bob"}
    with TestClient(snippet.app) as c:
        assert c.post("/users/1/poke", headers=as_bob).json() == {"online": False}


# --- websocket_redis.py: one broker per worker, from REDIS_URL -----------------------------


BROKER_SECRET = "fastkit-docs-broker-secret-0123456789"


def test_redis_broker_is_built_from_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/3")
    monkeypatch.setenv("SECRET_KEY", BROKER_SECRET)
    snippet = load("websocket_redis")
    assert isinstance(snippet.broker, RedisBroker)
    assert snippet.manager.broker is snippet.broker


@pytest.mark.skipif(REDIS_URL is None, reason="FASTKIT_TEST_REDIS_URL is not set")
def test_redis_reaches_clients_of_another_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", str(REDIS_URL))
    monkeypatch.setenv("SECRET_KEY", BROKER_SECRET)
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
