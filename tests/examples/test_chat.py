"""examples/chat in process: login, rooms, join/leave notices, refused handshakes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from examples.chat import main
from examples.chat.main import MAX_SOCKETS_PER_USER, create_app
from fastkit.websocket import ConnectionManager, MemoryBroker, RedisBroker

PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "christmas"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def manager_of(client: TestClient) -> ConnectionManager:
    app = client.app
    assert isinstance(app, FastAPI)
    manager: ConnectionManager = app.state.manager
    return manager


def login(client: TestClient, username: str) -> str:
    response = client.post(
        "/auth/token", data={"username": username, "password": PASSWORDS[username]}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def join(client: TestClient, username: str, room: str) -> WebSocketTestSession:
    """Open ``/ws/{room}`` as ``username``, the way the page does: the token as subprotocol."""
    token = login(client, username)
    return client.websocket_connect(f"/ws/{room}", subprotocols=[token])


def without_time(message: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(message.pop("at", ""), str)
    return message


def test_page_and_docs_are_served(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # The page sends the token as the subprotocol, which the server echoes.
    assert "new WebSocket(url, [token])" in response.text
    assert '"/auth/token"' in response.text
    assert client.get("/docs").status_code == 200


def test_every_demo_user_logs_in(client: TestClient) -> None:
    for username in PASSWORDS:
        headers = {"Authorization": f"Bearer {login(client, username)}"}
        assert client.get("/me", headers=headers).json() == {"username": username}


def test_wrong_password_is_invalid_grant(client: TestClient) -> None:
    response = client.post("/auth/token", data={"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    # The page shows ``message`` (static/index.html): it is still there, beside the RFC's.
    assert response.json()["message"] == "Incorrect username or password"


def test_rooms_notices_and_isolation(client: TestClient) -> None:
    with join(client, "alice", "lobby") as alice:
        assert alice.receive_json() == {"type": "welcome", "room": "lobby", "user": "alice"}
        with join(client, "carol", "games") as carol:
            assert carol.receive_json()["type"] == "welcome"
            with join(client, "bob", "lobby") as bob:
                assert bob.receive_json() == {"type": "welcome", "room": "lobby", "user": "bob"}
                joined = without_time(alice.receive_json())
                assert joined == {"type": "joined", "room": "lobby", "user": "bob"}

                bob.send_json({"text": "hi alice"})
                said = {"type": "message", "room": "lobby", "user": "bob", "text": "hi alice"}
                assert without_time(alice.receive_json()) == said
                assert without_time(bob.receive_json()) == said  # the sender sees it too

                carol.send_json({"text": "anyone?"})
                own = without_time(carol.receive_json())
                assert own == {
                    "type": "message",
                    "room": "games",
                    "user": "carol",
                    "text": "anyone?",
                }

                # Room isolation: the next frame alice and bob get is alice's own message,
                # not carol's, nor a notice of her joining.
                alice.send_json({"text": "hello bob"})
                for ws in (alice, bob):
                    assert without_time(ws.receive_json())["text"] == "hello bob"
            left = without_time(alice.receive_json())
            assert left == {"type": "left", "room": "lobby", "user": "bob"}
            carol.send_json({"text": "still here"})
            assert carol.receive_json()["text"] == "still here"  # no notice about bob
            assert manager_of(client).rooms() == ["games", "lobby"]
    assert manager_of(client).rooms() == []


def test_one_user_in_two_tabs(client: TestClient) -> None:
    with join(client, "alice", "lobby") as one, join(client, "alice", "lobby") as two:
        assert one.receive_json()["type"] == two.receive_json()["type"] == "welcome"
        assert without_time(one.receive_json()) == {
            "type": "joined",
            "room": "lobby",
            "user": "alice",
        }


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("just a string", id="not-an-object"),
        pytest.param({"text": ""}, id="empty"),
        pytest.param({"text": "   "}, id="blank"),
        pytest.param({"text": 5}, id="not-text"),
        pytest.param({"text": "x" * (main.MAX_TEXT + 1)}, id="too-long"),
    ],
)
def test_bad_message_is_answered_and_the_socket_stays(client: TestClient, message: Any) -> None:
    with join(client, "alice", "lobby") as alice:
        alice.receive_json()  # welcome
        alice.send_json(message)
        assert alice.receive_json() == {
            "type": "error",
            "error": 'Send {"text": "..."}, 1 to 1000 characters',
        }
        alice.send_text("{not json")
        assert alice.receive_json() == {"type": "error", "error": "Malformed JSON"}
        alice.send_json({"text": "still open"})
        assert alice.receive_json()["text"] == "still open"


BROWSER = {"Origin": "http://testserver"}


def refusal(client: TestClient, url: str, **kwargs: Any) -> WebSocketDisconnect:
    """How a browser (it sends ``Origin``) is refused: accepted, then closed with the code
    and reason its ``CloseEvent`` shows. Other clients get the HTTP answer (see below)."""
    # A copy: TestClient adds the handshake headers to the dict it is given.
    with (
        client.websocket_connect(url, headers={**BROWSER}, **kwargs) as ws,
        pytest.raises(WebSocketDisconnect) as refused,
    ):
        ws.receive_text()
    return refused.value


def denial(client: TestClient, url: str, **kwargs: Any) -> WebSocketDenialResponse:
    """How a client without ``Origin`` is refused: an HTTP answer with the envelope."""
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(url, **kwargs):
        pass  # pragma: no cover - refused before accept
    return refused.value


def forged_token() -> str:
    other = create_app(secret="another-secret-of-at-least-32-bytes-0123456789")
    with TestClient(other) as client:
        return login(client, "alice")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        pytest.param({}, "Missing token", id="no-token"),
        pytest.param({"subprotocols": ["not-a-token"]}, "Missing token", id="not-a-jwt"),
        pytest.param({"subprotocols": ["a.b.c"]}, "Invalid or expired token", id="garbage-jwt"),
        pytest.param("forged", "Invalid or expired token", id="other-secret"),
    ],
)
def test_bad_token_is_refused_1008(
    client: TestClient, kwargs: dict[str, Any] | str, reason: str
) -> None:
    if kwargs == "forged":
        kwargs = {"subprotocols": [forged_token()]}
    assert isinstance(kwargs, dict)
    refused = refusal(client, "/ws/lobby", **kwargs)
    assert (refused.code, refused.reason) == (1008, reason)
    answer = denial(client, "/ws/lobby", **kwargs)
    assert answer.status_code == 401
    assert answer.json() == {"code": 401, "message": reason, "data": None}
    assert manager_of(client).rooms() == []


def test_logged_out_token_is_refused_1008(client: TestClient) -> None:
    token = login(client, "bob")
    response = client.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    refused = refusal(client, "/ws/lobby", subprotocols=[token])
    assert (refused.code, refused.reason) == (1008, "Invalid or expired token")


@pytest.mark.parametrize("room", ["has space", "x" * 33, "dots.not.allowed"])
def test_bad_room_name_is_refused(client: TestClient, room: str) -> None:
    token = login(client, "alice")
    refused = refusal(client, f"/ws/{room}", subprotocols=[token])
    assert refused.code == 1008
    assert refused.reason.startswith("Invalid room: ")
    assert denial(client, f"/ws/{room}", subprotocols=[token]).status_code == 422


def test_one_user_may_hold_a_few_sockets_not_more(client: TestClient) -> None:
    token = login(client, "alice")
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_SOCKETS_PER_USER):
            ws = stack.enter_context(client.websocket_connect("/ws/lobby", subprotocols=[token]))
            assert ws.receive_json()["type"] == "welcome"
        answer = denial(client, "/ws/lobby", subprotocols=[token])
        assert (answer.status_code, answer.json()["message"]) == (
            429,
            "Too many connections for this user",
        )
        other = login(client, "bob")
        with client.websocket_connect("/ws/lobby", subprotocols=[other]) as bob:
            assert bob.receive_json()["type"] == "welcome"


def test_redis_url_selects_the_redis_broker() -> None:
    assert isinstance(create_app().state.manager.broker, MemoryBroker)
    app = create_app(redis_url="redis://127.0.0.1:1/0")
    assert isinstance(app.state.manager.broker, RedisBroker)


# --- the JWT secret ----------------------------------------------------------------------

SECRET = "a-chat-test-secret-of-at-least-32-bytes-0123"


def random_secret_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno >= logging.WARNING and "JWT_SECRET" in r.getMessage()
    ]


def get_me(client: TestClient, token: str) -> int:
    return client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_without_jwt_secret_each_app_has_its_own_random_one_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with caplog.at_level(logging.WARNING):
        one, other = create_app(), create_app()
        assert random_secret_warnings(caplog) == []  # at startup, not when the app is built
        with TestClient(one) as first, TestClient(other) as second:
            token = login(first, "alice")
            assert get_me(first, token) == 200
            # Another worker, or this one after a restart, refuses the token.
            assert get_me(second, token) == 401
            refused = refusal(second, "/ws/lobby", subprotocols=[token])
            assert (refused.code, refused.reason) == (1008, "Invalid or expired token")
    warnings = random_secret_warnings(caplog)
    assert [(r.name, r.levelno) for r in warnings] == [("chat", logging.WARNING)] * 2
    assert warnings[0].getMessage() == (
        "JWT_SECRET is not set: using a random secret. Tokens stop working at restart "
        "and other workers refuse them; set JWT_SECRET (at least 32 bytes) in production."
    )


@pytest.mark.parametrize(
    ("env", "kwargs"),
    [
        pytest.param(SECRET, {}, id="env"),
        pytest.param(None, {"secret": SECRET}, id="argument"),
        pytest.param("x" * 40, {"secret": SECRET}, id="argument-over-env"),
    ],
)
def test_a_given_secret_signs_the_tokens_and_is_not_warned_about(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    env: str | None,
    kwargs: dict[str, str],
) -> None:
    if env is None:
        monkeypatch.delenv("JWT_SECRET", raising=False)
    else:
        monkeypatch.setenv("JWT_SECRET", env)
    with (
        caplog.at_level(logging.WARNING),
        TestClient(create_app(**kwargs)) as first,
        TestClient(create_app(**kwargs)) as second,
    ):
        token = login(first, "alice")
        assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == "1"
        assert get_me(second, token) == 200  # every worker with the secret accepts it
    assert random_secret_warnings(caplog) == []


def test_a_short_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "too-short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        create_app()
