"""A refused websocket tells its client why, with fastkit's exception handlers installed.

- a client without ``Origin`` (not a browser) gets an HTTP answer: the status and the
  app's error body (TestClient raises `WebSocketDenialResponse`, the denial response);
- a browser (``Origin`` present) gets the socket accepted, then closed with the close code
  and the reason, which is what its ``CloseEvent`` can show (TestClient: the connect
  succeeds, the first receive raises `WebSocketDisconnect` with both).

The same with real clients: tests/websocket/test_refusals_e2e.py (``websockets``) and
tests/examples/test_browser.py (Chromium).

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import time
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Path, WebSocket
from fastapi.testclient import TestClient
from starlette.exceptions import WebSocketException
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

import fastkit
from fastkit.auth import JWTAuth, RedisRevocationStore, TokenClaims, TokenService
from fastkit.websocket import (
    ConnectionManager,
    WebSocketAuth,
    WebSocketRefused,
    refuse,
    websocket_exception_handler,
    websocket_token,
)

SECRET = "fastkit-websocket-refusal-tests-0123456789"
ORIGIN = "https://chat.example.com"
BROWSER = {"Origin": ORIGIN}
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


class User:
    def __init__(self, name: str, active: bool = True) -> None:
        self.name, self.active = name, active


USERS = {"1": User("ann"), "2": User("bob"), "3": User("cat", active=False)}


def build(*, style: str = "envelope", revocation: Any = None, **manager_options: Any) -> Any:
    tokens = TokenService(secret=SECRET)

    async def load_user(claims: TokenClaims) -> User | None:
        return USERS.get(claims.sub)

    auth: JWTAuth[User] = JWTAuth(
        tokens, user_loader=load_user, is_active=lambda u: u.active, revocation=revocation
    )
    manager = ConnectionManager(**manager_options)
    WSAuth = Annotated[WebSocketAuth, Depends(websocket_token(auth))]
    app = FastAPI()

    @app.websocket("/ws/{room}")
    async def ws(
        websocket: WebSocket, who: WSAuth, room: Annotated[str, Path(pattern="^[a-z]{1,20}$")]
    ) -> None:
        async with manager.connect(
            websocket, rooms=[room], subprotocol=who.subprotocol, user_id=who.claims.sub
        ) as conn:
            await manager.send(conn.id, {"hello": who.user.name})
            async for _ in manager.iter_json(conn):
                pass

    @app.websocket("/plain")
    async def plain(websocket: WebSocket) -> None:
        raise WebSocketException(1008, "Plain refusal")

    @app.websocket("/long")
    async def long(websocket: WebSocket) -> None:
        raise WebSocketRefused(1008, "é" * 200, status_code=403)

    @app.websocket("/after-accept")
    async def after_accept(websocket: WebSocket) -> None:
        await websocket.accept()
        raise WebSocketRefused(1008, "Changed my mind", status_code=403)

    @app.websocket("/helper")
    async def helper(websocket: WebSocket) -> None:
        await refuse(websocket, 1008, "No such room", status_code=404)

    fastkit.setup(app, errors=style)  # type: ignore[arg-type]
    app.state.tokens, app.state.manager = tokens, manager
    return app


@pytest.fixture
def app() -> Any:
    return build()


def denial(client: TestClient, url: str, **kwargs: Any) -> WebSocketDenialResponse:
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(url, **kwargs):
        pytest.fail("the handshake was accepted")  # pragma: no cover
    return refused.value


def browser_close(client: TestClient, url: str, **kwargs: Any) -> tuple[int, str, str | None]:
    """(code, reason, accepted subprotocol) of a socket accepted only to be closed."""
    headers = {**BROWSER, **kwargs.pop("headers", {})}
    with client.websocket_connect(url, headers=headers, **kwargs) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        return closed.value.code, closed.value.reason, ws.accepted_subprotocol


def token(app: Any, sub: str = "1") -> str:
    return str(app.state.tokens.create_access_token(sub))


# --- non-browser clients: an HTTP answer in the app's error style ----------------------------


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        pytest.param("missing", 401, "Missing token", id="missing-token"),
        pytest.param("garbage", 401, "Invalid or expired token", id="bad-token"),
        pytest.param("inactive", 403, "Inactive user", id="inactive-user"),
    ],
)
def test_a_non_browser_client_gets_the_status_and_the_envelope(
    app: Any, case: str, status: int, message: str
) -> None:
    headers = {}
    if case == "garbage":
        headers = {"Authorization": "Bearer not-a-jwt"}
    elif case == "inactive":
        headers = {"Authorization": f"Bearer {token(app, '3')}"}
    with TestClient(app) as client:
        response = denial(client, "/ws/lobby", headers=headers)
    assert response.status_code == status
    assert response.json() == {"code": status, "message": message, "data": None}
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(app.state.manager) == 0


def test_the_problem_style_is_kept() -> None:
    app = build(style="problem")
    with TestClient(app) as client:
        response = denial(client, "/ws/lobby")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Missing token"


def test_a_revocation_store_that_is_down_is_a_503_and_1011() -> None:
    store = RedisRevocationStore(DEAD_REDIS_URL, timeout=0.2)
    app = build(revocation=store)
    good = {"Authorization": f"Bearer {token(app)}"}
    with TestClient(app) as client:
        try:
            response = denial(client, "/ws/lobby", headers=good)
            code, reason, _ = browser_close(client, "/ws/lobby", headers=good)
        finally:
            assert client.portal is not None
            client.portal.call(store.aclose)
    assert (response.status_code, response.json()["code"]) == (503, 503)
    assert (code, reason) == (1011, "Token revocation check unavailable")


def test_a_bad_path_parameter_is_a_422_and_1008(app: Any) -> None:
    good = {"Authorization": f"Bearer {token(app)}"}
    with TestClient(app) as client:
        response = denial(client, "/ws/NOT-A-ROOM", headers=good)
        code, reason, _ = browser_close(client, "/ws/NOT-A-ROOM", headers=good)
    assert response.status_code == 422
    assert response.json()["message"].startswith("Invalid room: String should match pattern")
    assert code == 1008
    assert reason.startswith("Invalid room: String should match pattern")


def test_a_plain_websocket_exception_gets_the_status_its_code_stands_for(app: Any) -> None:
    with TestClient(app) as client:
        response = denial(client, "/plain")
        code, reason, _ = browser_close(client, "/plain")
    assert (response.status_code, response.json()["message"]) == (403, "Plain refusal")
    assert (code, reason) == (1008, "Plain refusal")


def test_the_refuse_helper(app: Any) -> None:
    with TestClient(app) as client:
        response = denial(client, "/helper")
        code, reason, _ = browser_close(client, "/helper")
    assert (response.status_code, response.json()["message"]) == (404, "No such room")
    assert (code, reason) == (1008, "No such room")


# --- browsers: accepted, then closed with the code and the reason ---------------------------


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        pytest.param("missing", "Missing token", id="missing-token"),
        pytest.param("garbage", "Invalid or expired token", id="bad-token"),
        pytest.param("inactive", "Inactive user", id="inactive-user"),
    ],
)
def test_a_browser_reads_1008_and_the_reason(app: Any, case: str, reason: str) -> None:
    protocols = {
        "missing": [],
        "garbage": ["bearer", "not.a.jwt"],
        "inactive": ["bearer", token(app, "3")],
    }[case]
    with TestClient(app) as client:
        got = browser_close(client, "/ws/lobby", subprotocols=protocols)
    # The browser fails a handshake that accepts none of the subprotocols it offered,
    # before the page could read the close: the refusal accepts the first one offered.
    assert got == (1008, reason, protocols[0] if protocols else None)
    assert len(app.state.manager) == 0


def test_a_reason_is_cut_to_what_a_close_frame_carries(app: Any) -> None:
    with TestClient(app) as client:
        code, reason, _ = browser_close(client, "/long")
    assert code == 1008
    assert len(reason.encode()) <= 123
    assert reason.endswith("...")
    assert reason.startswith("éé")


def test_after_accept_it_is_a_close(app: Any) -> None:
    with (
        TestClient(app) as client,
        client.websocket_connect("/after-accept") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1008, "Changed my mind")


def test_an_accepted_connection_still_works(app: Any) -> None:
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token(app)}", **BROWSER}
        with client.websocket_connect("/ws/lobby", headers=headers) as ws:
            assert ws.receive_json() == {"hello": "ann"}


# --- caps --------------------------------------------------------------------------------------


def test_one_user_over_max_connections_per_user_is_refused() -> None:
    app = build(max_connections_per_user=2)
    ann = {"Authorization": f"Bearer {token(app, '1')}"}
    bob = {"Authorization": f"Bearer {token(app, '2')}"}
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws/lobby", headers=ann) as first,
        client.websocket_connect("/ws/lobby", headers=ann) as second,
    ):
        assert first.receive_json() == second.receive_json() == {"hello": "ann"}
        response = denial(client, "/ws/lobby", headers=ann)
        assert (response.status_code, response.json()["message"]) == (
            429,
            "Too many connections for this user",
        )
        code, reason, _ = browser_close(client, "/ws/lobby", headers=ann)
        assert (code, reason) == (1008, "Too many connections for this user")
        with client.websocket_connect("/ws/lobby", headers=bob) as other:  # another user
            assert other.receive_json() == {"hello": "bob"}
        second.close()
        # The count follows the connections that end (once the server has seen this one go).
        manager = app.state.manager
        for _ in range(200):
            if len(manager) == 1:  # ann's first only: bob's and the second have ended
                break
            time.sleep(0.01)
        with client.websocket_connect("/ws/lobby", headers=ann) as third:
            assert third.receive_json() == {"hello": "ann"}


def test_over_max_connections_is_refused_try_again_later() -> None:
    app = build(max_connections=1)
    ann = {"Authorization": f"Bearer {token(app, '1')}"}
    bob = {"Authorization": f"Bearer {token(app, '2')}"}
    with TestClient(app) as client:
        with client.websocket_connect("/ws/lobby", headers=ann) as first:
            assert first.receive_json() == {"hello": "ann"}
            response = denial(client, "/ws/lobby", headers=bob)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            code, reason, _ = browser_close(client, "/ws/lobby", headers=bob)
            assert (code, reason) == (1013, "Too many connections; try again later")
        with client.websocket_connect("/ws/lobby", headers=bob) as later:
            assert later.receive_json() == {"hello": "bob"}


@pytest.mark.parametrize(
    "options",
    [
        {"max_connections": 0},
        {"max_connections": -1},
        {"max_connections_per_user": 0},
        {"max_connections_per_user": 1.5},
        {"max_connections": True},
    ],
    ids=str,
)
def test_bad_caps_are_refused_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="whole number"):
        ConnectionManager(**options)


def test_the_handler_can_be_installed_alone() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        raise WebSocketRefused(1008, "Nope", status_code=403)

    app.add_exception_handler(WebSocketException, websocket_exception_handler)
    with TestClient(app) as client:
        response = denial(client, "/ws")
        assert (response.status_code, response.json()["message"]) == (403, "Nope")
        assert browser_close(client, "/ws")[:2] == (1008, "Nope")


def test_bad_refusal_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status_code"):
        WebSocketRefused(1008, "x", status_code=200)


def test_refusals_carry_the_handshakes_request_id(app: Any) -> None:
    """Either answer names the request id a client can quote and the logs show."""
    sent = {"X-Request-ID": "ws-handshake-0001"}
    with TestClient(app) as client:
        answer = denial(client, "/ws/lobby", headers=dict(sent))
        assert answer.headers["x-request-id"] == "ws-handshake-0001"
        assert answer.headers["www-authenticate"].startswith("Bearer")  # kept beside it
        with client.websocket_connect("/ws/lobby", headers={**BROWSER, **sent}) as ws:
            with pytest.raises(WebSocketDisconnect):
                ws.receive_text()
            accepted = dict(ws.extra_headers or [])
        assert accepted[b"x-request-id"] == b"ws-handshake-0001"
        generated = denial(client, "/plain")
        assert len(generated.headers["x-request-id"]) == 32  # made up when none was sent
