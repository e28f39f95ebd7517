"""The chat through its routes: the page, logins, rooms over websockets, refusals."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "christmas"}


def login(client: TestClient, username: str) -> str:
    form = {"username": username, "password": PASSWORDS[username]}
    response = client.post("/auth/token", data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def join(client: TestClient, username: str, room: str) -> WebSocketTestSession:
    """``/ws/{room}`` as ``username``, the way the page does it: the token as subprotocol."""
    return client.websocket_connect(f"/ws/{room}", subprotocols=[login(client, username)])


def without_time(message: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(message.pop("at"), str)
    return message


def test_the_page_is_served(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_a_user_logs_in(client: TestClient) -> None:
    token = login(client, "alice")
    me = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"username": "alice"}  # no EnvelopeRoute here: the plain JSON


def test_a_room_hears_its_members_and_no_one_else(client: TestClient) -> None:
    with join(client, "alice", "lobby") as alice, join(client, "carol", "games") as carol:
        assert alice.receive_json() == {"type": "welcome", "room": "lobby", "user": "alice"}
        assert carol.receive_json()["type"] == "welcome"
        with join(client, "bob", "lobby") as bob:
            assert bob.receive_json()["type"] == "welcome"
            assert without_time(alice.receive_json()) == {
                "type": "joined",
                "room": "lobby",
                "user": "bob",
            }
            bob.send_json({"text": "hi alice"})
            said = {"type": "message", "room": "lobby", "user": "bob", "text": "hi alice"}
            assert without_time(alice.receive_json()) == said
            assert without_time(bob.receive_json()) == said
        assert without_time(alice.receive_json())["type"] == "left"
        carol.send_json({"text": "anyone?"})
        assert carol.receive_json()["text"] == "anyone?"  # nothing from the lobby before it


def test_a_bad_message_is_answered_and_the_socket_stays(client: TestClient) -> None:
    with join(client, "alice", "lobby") as alice:
        alice.receive_json()  # welcome
        alice.send_json({"text": ""})
        assert alice.receive_json()["type"] == "error"
        alice.send_json({"text": "still here"})
        assert alice.receive_json()["text"] == "still here"


def test_without_a_token_a_client_gets_a_401(client: TestClient) -> None:
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect("/ws/lobby"):
        pass
    assert refused.value.status_code == 401
    assert refused.value.json() == {"code": 401, "message": "Missing token", "data": None}


def test_without_a_token_a_browser_reads_close_code_1008(client: TestClient) -> None:
    headers = {"origin": "http://testserver"}  # a browser's handshake carries Origin
    with (
        client.websocket_connect("/ws/lobby", headers=headers) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1008, "Missing token")


def test_health(client: TestClient) -> None:
    """Readiness (with REDIS_URL: the broker hears the other workers) and liveness."""
    assert client.get("/health").json() == {"status": "pass", "checks": {}}
    assert client.get("/health/live").json() == {"status": "pass"}
