"""fastkit.websocket.websocket_token: the JWT from the Authorization header, the
subprotocol, the query or (opt-in, from allowed origins only) a cookie.

These apps have no fastkit exception handlers: a refused handshake is closed before accept,
and TestClient raises `WebSocketDisconnect` with the close code (1008 for a bad token, 1011
when the revocation store is down). What clients read with the handlers installed is in
tests/websocket/test_refusals.py.

No ``from __future__ import annotations``: the endpoints are built inside a function, and
FastAPI must evaluate annotations that name its local variables (``auth``).
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastkit.auth import (
    JWTAuth,
    MemoryRevocationStore,
    RedisRevocationStore,
    RevocationStore,
    TokenClaims,
    TokenService,
)
from fastkit.websocket import ConnectionManager, WebSocketAuth, websocket_token

SECRET = "fastkit-websocket-tests-secret-0123456789"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
INVALID = "Invalid or expired token"
ORIGIN = "https://chat.example.com"
FROM_SITE = {"Origin": ORIGIN}


@dataclass
class User:
    id: str
    name: str
    active: bool = True


@dataclass
class Kit:
    app: FastAPI
    tokens: TokenService
    store: RevocationStore
    manager: ConnectionManager


def build(store: RevocationStore | None = None) -> Kit:
    """``/ws`` (default token sources) and ``/custom`` (query ``t``, cookie ``jwt``)."""
    tokens = TokenService(secret=SECRET)
    store = store if store is not None else MemoryRevocationStore()
    users = {"1": User("1", "ann"), "2": User("2", "bob"), "3": User("3", "cat", active=False)}

    async def load_user(claims: TokenClaims) -> User | None:
        return users.get(claims.sub)

    auth: JWTAuth[User] = JWTAuth(
        tokens, user_loader=load_user, revocation=store, is_active=lambda u: u.active
    )
    manager = ConnectionManager()
    WSAuth = Annotated[
        WebSocketAuth,
        Depends(websocket_token(auth, cookie="access_token", allowed_origins=[ORIGIN])),
    ]
    CustomAuth = Annotated[
        WebSocketAuth,
        Depends(websocket_token(auth, query_param="t", cookie="jwt", allowed_origins=[ORIGIN])),
    ]
    DefaultAuth = Annotated[WebSocketAuth, Depends(websocket_token(auth))]
    NoQueryAuth = Annotated[WebSocketAuth, Depends(websocket_token(auth, query_param=None))]
    app = FastAPI()

    async def serve(websocket: WebSocket, who: WebSocketAuth) -> None:
        async with manager.connect(
            websocket, client_id=who.claims.sub, subprotocol=who.subprotocol
        ) as conn:
            await manager.send(
                conn.id, {"sub": who.claims.sub, "user": who.user.name, "proto": who.subprotocol}
            )
            async for _ in manager.iter_json(conn):
                pass

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, who: WSAuth) -> None:
        await serve(websocket, who)

    @app.websocket("/custom")
    async def custom(websocket: WebSocket, who: CustomAuth) -> None:
        await serve(websocket, who)

    @app.websocket("/default")
    async def default(websocket: WebSocket, who: DefaultAuth) -> None:
        await serve(websocket, who)

    @app.websocket("/noquery")
    async def noquery(websocket: WebSocket, who: NoQueryAuth) -> None:
        await serve(websocket, who)

    return Kit(app, tokens, store, manager)


@pytest.fixture
def kit() -> Kit:
    return build()


@pytest.fixture
def client(kit: Kit) -> Iterator[TestClient]:
    with TestClient(kit.app) as client:
        yield client


def expired_token(subject: str = "1") -> str:
    now = int(time.time())
    payload = {
        "sub": subject,
        "iat": now - 120,
        "nbf": now - 120,
        "exp": now - 60,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "scopes": [],
    }
    return jwt.encode(payload, SECRET, algorithm="HS256")


def refusal(client: TestClient, url: str, **kwargs: Any) -> WebSocketDisconnect:
    """The close that refuses the handshake (the socket is never accepted)."""
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(url, **kwargs):
        pytest.fail("the handshake was accepted")  # pragma: no cover
    return refused.value


# --- where the token comes from ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "echoed"),
    [
        pytest.param("bearer-subprotocol", "bearer", id="subprotocol-bearer-token"),
        pytest.param("Bearer-subprotocol", "Bearer", id="subprotocol-Bearer-any-case"),
        pytest.param("other-then-bearer", "bearer", id="subprotocol-chat-bearer-token"),
        pytest.param("token-subprotocol", "TOKEN", id="subprotocol-token-alone-echoed"),
        pytest.param("query", None, id="query-token"),
        pytest.param("cookie", None, id="cookie-access_token-from-allowed-origin"),
        pytest.param("authorization", None, id="authorization-bearer-header"),
        pytest.param("authorization-any-case", None, id="authorization-BEARER-header"),
    ],
)
def test_token_sources(kit: Kit, client: TestClient, source: str, echoed: str | None) -> None:
    token = kit.tokens.create_access_token("1")
    url, kwargs = "/ws", {}
    if source == "bearer-subprotocol":
        kwargs = {"subprotocols": ["bearer", token]}
    elif source == "Bearer-subprotocol":
        kwargs = {"subprotocols": ["Bearer", token]}
    elif source == "other-then-bearer":
        kwargs = {"subprotocols": ["chat", "bearer", token]}
    elif source == "token-subprotocol":
        kwargs = {"subprotocols": [token]}
    elif source == "query":
        url = f"/ws?token={token}"
    elif source == "authorization":
        kwargs = {"headers": {"Authorization": f"Bearer {token}"}}
    elif source == "authorization-any-case":
        kwargs = {"headers": {"Authorization": f"BEARER  {token} "}}
    else:
        kwargs = {"headers": {"Cookie": f"access_token={token}", **FROM_SITE}}
    with client.websocket_connect(url, **kwargs) as ws:
        expected = token if echoed == "TOKEN" else echoed
        assert ws.accepted_subprotocol == expected
        assert ws.receive_json() == {"sub": "1", "user": "ann", "proto": expected}
    assert len(kit.manager) == 0


@pytest.mark.parametrize(
    "source",
    [pytest.param("query", id="query-t"), pytest.param("cookie", id="cookie-jwt")],
)
def test_custom_query_param_and_cookie_names(kit: Kit, client: TestClient, source: str) -> None:
    token = kit.tokens.create_access_token("2")
    if source == "query":
        session = client.websocket_connect(f"/custom?t={token}")
    else:
        session = client.websocket_connect(
            "/custom", headers={"Cookie": f"jwt={token}", **FROM_SITE}
        )
    with session as ws:
        assert ws.receive_json() == {"sub": "2", "user": "bob", "proto": None}
    # The default names are not read by this endpoint.
    assert refusal(client, f"/custom?token={token}").code == 1008
    cookie = {"Cookie": f"access_token={token}", **FROM_SITE}
    assert refusal(client, "/custom", headers=cookie).code == 1008


def test_subprotocol_is_read_before_query_and_query_before_cookie(
    kit: Kit, client: TestClient
) -> None:
    good = kit.tokens.create_access_token("1")
    with client.websocket_connect("/ws?token=garbage", subprotocols=["bearer", good]) as ws:
        assert ws.receive_json()["sub"] == "1"
    with client.websocket_connect(
        f"/ws?token={good}", headers={"Cookie": "access_token=garbage", **FROM_SITE}
    ) as ws:
        assert ws.receive_json()["sub"] == "1"
    # A bad query token is refused, not replaced by a good cookie.
    refused = refusal(
        client, "/ws?token=garbage", headers={"Cookie": f"access_token={good}", **FROM_SITE}
    )
    assert (refused.code, refused.reason) == (1008, INVALID)
    # The Authorization header comes first of all.
    with client.websocket_connect(
        "/ws?token=garbage",
        subprotocols=["bearer", "garbage"],
        headers={"Authorization": f"Bearer {good}"},
    ) as ws:
        assert ws.receive_json() == {"sub": "1", "user": "ann", "proto": None}


def test_an_empty_query_token_falls_back_to_the_cookie(kit: Kit, client: TestClient) -> None:
    token = kit.tokens.create_access_token("1")
    cookie = {"Cookie": f"access_token={token}", **FROM_SITE}
    with client.websocket_connect("/ws?token=", headers=cookie) as ws:
        assert ws.receive_json()["sub"] == "1"


# --- the cookie: opt-in, and only from allowed origins ----------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(None, id="no-origin"),
        pytest.param("https://evil.example", id="foreign-origin"),
        pytest.param("https://chat.example.com.evil.example", id="suffixed-origin"),
        pytest.param("http://chat.example.com", id="other-scheme"),
        pytest.param("null", id="null-origin"),
    ],
)
def test_a_cookie_token_from_a_missing_or_foreign_origin_is_refused(
    kit: Kit, client: TestClient, origin: str | None
) -> None:
    """Cross-site websocket hijacking: a page elsewhere opens the socket with the cookie."""
    headers = {"Cookie": f"access_token={kit.tokens.create_access_token('1')}"}
    if origin is not None:
        headers["Origin"] = origin
    refused = refusal(client, "/ws", headers=headers)
    assert (refused.code, refused.reason) == (1008, "Origin not allowed")
    assert len(kit.manager) == 0


def test_the_origin_is_compared_without_case(kit: Kit, client: TestClient) -> None:
    token = kit.tokens.create_access_token("1")
    headers = {"Cookie": f"access_token={token}", "Origin": ORIGIN.upper()}
    with client.websocket_connect("/ws", headers=headers) as ws:
        assert ws.receive_json()["sub"] == "1"


def test_by_default_no_cookie_is_read(kit: Kit, client: TestClient) -> None:
    headers = {"Cookie": f"access_token={kit.tokens.create_access_token('1')}", **FROM_SITE}
    refused = refusal(client, "/default", headers=headers)
    assert (refused.code, refused.reason) == (1008, "Missing token")


def test_query_param_none_reads_no_query(kit: Kit, client: TestClient) -> None:
    token = kit.tokens.create_access_token("1")
    assert refusal(client, f"/noquery?token={token}").reason == "Missing token"
    with client.websocket_connect("/noquery", subprotocols=["bearer", token]) as ws:
        assert ws.receive_json()["sub"] == "1"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"cookie": "access_token"}, ValueError, id="cookie-without-origins"),
        pytest.param(
            {"cookie": "c", "allowed_origins": "https://a.example"}, TypeError, id="a-string"
        ),
        pytest.param(
            {"cookie": "c", "allowed_origins": ["https://a.example/"]}, ValueError, id="a-path"
        ),
        pytest.param({"cookie": "c", "allowed_origins": ["a.example"]}, ValueError, id="no-scheme"),
        pytest.param(
            {"cookie": "c", "allowed_origins": ["https://*.a.example"]}, ValueError, id="wildcard"
        ),
        pytest.param({"cookie": "c", "allowed_origins": ["*"]}, ValueError, id="any"),
    ],
)
def test_bad_cookie_options_are_refused_at_construction(
    kit: Kit, options: dict[str, Any], error: type[Exception]
) -> None:
    auth: JWTAuth[User] = JWTAuth(kit.tokens, user_loader=lambda claims: None)
    with pytest.raises(error):
        websocket_token(auth, **options)


# --- refusals: 1008 --------------------------------------------------------------------------


def bad_token(kit: Kit, case: str, client: TestClient) -> str:
    if case == "garbage":
        return "not-a-jwt"
    if case == "three-dots-garbage":
        return "a.b.c"
    if case == "other-key":
        return TokenService(secret="another-secret-that-is-32-bytes-long!").create_access_token("1")
    if case == "expired":
        return expired_token()
    if case == "refresh-token":
        return kit.tokens.create_refresh_token("1")
    if case == "unknown-user":
        return kit.tokens.create_access_token("999")
    if case == "inactive-user":
        return kit.tokens.create_access_token("3")
    token = kit.tokens.create_access_token("1", family="fam-1")
    claims = kit.tokens.decode(token)
    revoked = claims.jti if case == "revoked" else "fam:fam-1"
    assert client.portal is not None
    client.portal.call(kit.store.revoke, revoked, claims.exp)
    return token


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        pytest.param("garbage", INVALID, id="garbage"),
        pytest.param("three-dots-garbage", INVALID, id="jwt-shaped-garbage"),
        pytest.param("other-key", INVALID, id="bad-signature"),
        pytest.param("expired", INVALID, id="expired"),
        pytest.param("refresh-token", INVALID, id="refresh-token"),
        pytest.param("revoked", INVALID, id="revoked"),
        pytest.param("revoked-family", INVALID, id="revoked-family"),
        pytest.param("unknown-user", INVALID, id="unknown-user"),
        pytest.param("inactive-user", "Inactive user", id="inactive-user"),
    ],
)
@pytest.mark.parametrize("where", ["bearer-subprotocol", "query", "cookie"])
def test_bad_token_is_refused_with_1008(
    kit: Kit, client: TestClient, case: str, reason: str, where: str
) -> None:
    token = bad_token(kit, case, client)
    if where == "bearer-subprotocol":
        refused = refusal(client, "/ws", subprotocols=["bearer", token])
    elif where == "query":
        refused = refusal(client, f"/ws?token={token}")
    else:
        refused = refusal(client, "/ws", headers={"Cookie": f"access_token={token}", **FROM_SITE})
    assert (refused.code, refused.reason) == (1008, reason)
    assert len(kit.manager) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"subprotocols": ["bearer"]}, id="bearer-without-token"),
        pytest.param({"subprotocols": ["chat"]}, id="other-subprotocol"),
        pytest.param({"headers": {"Cookie": "access_token=", **FROM_SITE}}, id="empty-cookie"),
        pytest.param({"headers": {"Cookie": "session=abc", **FROM_SITE}}, id="other-cookie"),
        pytest.param({"headers": {"Authorization": "Bearer "}}, id="empty-bearer-header"),
        pytest.param({"headers": {"Authorization": "Basic YTpi"}}, id="basic-auth-header"),
    ],
)
def test_missing_token_is_refused_with_1008(
    kit: Kit, client: TestClient, kwargs: dict[str, Any]
) -> None:
    refused = refusal(client, "/ws", **kwargs)
    assert (refused.code, refused.reason) == (1008, "Missing token")


def test_empty_query_token_is_missing(client: TestClient) -> None:
    refused = refusal(client, "/ws?token=")
    assert (refused.code, refused.reason) == (1008, "Missing token")


# --- refusals: 1011 --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["bearer-subprotocol", "query", "cookie"])
def test_revocation_store_down_is_refused_with_1011(where: str) -> None:
    store = RedisRevocationStore(DEAD_REDIS_URL, timeout=0.2)
    kit = build(store)
    token = kit.tokens.create_access_token("1")
    with TestClient(kit.app) as client:
        try:
            if where == "bearer-subprotocol":
                refused = refusal(client, "/ws", subprotocols=["bearer", token])
            elif where == "query":
                refused = refusal(client, f"/ws?token={token}")
            else:
                cookie = {"Cookie": f"access_token={token}", **FROM_SITE}
                refused = refusal(client, "/ws", headers=cookie)
        finally:
            assert client.portal is not None
            client.portal.call(store.aclose)
    assert (refused.code, refused.reason) == (1011, "Token revocation check unavailable")
    assert len(kit.manager) == 0
