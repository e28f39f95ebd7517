"""A chat with rooms over websockets, behind a login: fastkit's auth and websocket pieces.

Run it with ``uvicorn examples.chat.main:app`` and open http://127.0.0.1:8000 in two
browser windows; log in as ``alice`` / ``wonderland`` in one and ``bob`` / ``builder`` in
the other, and join the same room. With ``REDIS_URL`` set, rooms and logouts are shared
through Redis, so ``uvicorn examples.chat.main:app --workers 2`` serves one chat (give every
worker the same ``JWT_SECRET``: without it each makes a random one, and warns).
"""

# No ``from __future__ import annotations``: the endpoints are defined inside create_app and
# FastAPI evaluates their annotations, which name create_app's local variables.

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from fastkit import MissingDependencyError, setup
from fastkit.auth import (
    JWTAuth,
    MemoryRevocationStore,
    PasswordHasher,
    RedisRevocationStore,
    RevocationStore,
    TokenClaims,
    TokenService,
    auth_router,
)
from fastkit.docs_assets import serve_docs_locally
from fastkit.health import health_router
from fastkit.routing import unique_id_from_tag
from fastkit.websocket import (
    Broker,
    ConnectionManager,
    MemoryBroker,
    RedisBroker,
    WebSocketAuth,
    websocket_token,
)

logger = logging.getLogger("chat")

ROOM_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
MAX_TEXT = 1000  # characters in one chat message
MAX_SOCKETS_PER_USER = 5  # open sockets of one user in one worker (tabs, rooms)
PAGE = Path(__file__).parent / "static" / "index.html"

# argon2's defaults (64 MiB, 3 passes) in production; these small costs keep the demo quick.
hasher = PasswordHasher(argon2__time_cost=1, argon2__memory_cost=1024)


@dataclass
class User:
    id: int
    username: str
    password_hash: str


# Demo users, in memory: alice / wonderland, bob / builder, carol / christmas.
USERS = {
    user.username: user
    for user in (
        User(1, "alice", hasher.hash("wonderland")),
        User(2, "bob", hasher.hash("builder")),
        User(3, "carol", hasher.hash("christmas")),
    )
}


async def authenticate(username: str, password: str) -> User | None:
    user = USERS.get(username)
    if user is None:
        await hasher.adummy_verify()  # as slow as a wrong password: no user enumeration
        return None
    return user if await hasher.averify(password, user.password_hash) else None


def load_user(claims: TokenClaims) -> User | None:
    return next((user for user in USERS.values() if str(user.id) == claims.sub), None)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def error_frame(error: str) -> dict[str, str]:
    return {"type": "error", "error": error}


def chat_text(message: Any) -> str | None:
    """The text of a ``{"text": "..."}`` message, or None if it is not one."""
    if not isinstance(message, dict):
        return None
    text = message.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return None
    return text.strip()


def create_app(
    *, secret: str | None = None, redis_url: str | None = None, channel: str = "fastkit:chat"
) -> FastAPI:
    """The chat app; ``redis_url`` shares rooms and logouts between workers through Redis.

    Args:
        secret: The JWT secret, at least 32 bytes, the same in every worker (default:
            ``JWT_SECRET``; without it a random one, and a warning at startup).
        redis_url: ``redis://...`` to use `RedisBroker` and `RedisRevocationStore`;
            None keeps everything in this process.
        channel: The Redis pub/sub channel of this app's websocket messages.
    """
    secret = secret or os.environ.get("JWT_SECRET") or None
    random_secret = secret is None
    # No known fallback: a secret in the source lets anyone who reads it forge tokens.
    tokens_secret = secrets.token_hex(32) if secret is None else secret
    tokens = TokenService(secret=tokens_secret)
    broker: Broker
    revocation: RevocationStore
    if redis_url:
        broker = RedisBroker(redis_url, secret=tokens_secret, channel=channel)
        revocation = RedisRevocationStore(redis_url)
    else:
        broker = MemoryBroker()
        revocation = MemoryRevocationStore()
    auth = JWTAuth(tokens, user_loader=load_user, revocation=revocation)
    # Caps per worker: a user may keep a few tabs open, not open sockets without end.
    manager = ConnectionManager(
        broker=broker, max_connections=10_000, max_connections_per_user=MAX_SOCKETS_PER_USER
    )
    CurrentUser = Annotated[User, Depends(auth.current_user)]
    WSUser = Annotated[WebSocketAuth, Depends(websocket_token(auth))]
    Room = Annotated[str, PathParam(pattern=ROOM_PATTERN)]
    page = PAGE.read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if random_secret:
            # A WARNING reaches stderr under plain uvicorn, which leaves the root logger alone.
            logger.warning(
                "JWT_SECRET is not set: using a random secret. Tokens stop working at restart "
                "and other workers refuse them; set JWT_SECRET (at least 32 bytes) in production."
            )
        await manager.start()  # with Redis: subscribes, and fails here if it cannot
        try:
            yield
        finally:
            await manager.stop()  # closes every socket (1001), then the broker
            if isinstance(revocation, RedisRevocationStore):
                await revocation.aclose()

    app = FastAPI(
        title="fastkit chat example",
        lifespan=lifespan,
        generate_unique_id_function=unique_id_from_tag,  # chat_me, auth_login...
    )
    setup(app)
    with contextlib.suppress(MissingDependencyError):  # the offline-docs extra
        serve_docs_locally(app)  # /docs and /redoc from this app, not a CDN
    app.state.manager = manager
    app.include_router(auth_router(auth, authenticate=authenticate))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    # /health: ready when this worker hears the others (Redis subscribed and answering);
    # /health/live: the process serves requests.
    checks = {"redis": broker.ping} if isinstance(broker, RedisBroker) else {}
    app.include_router(health_router(checks=checks, timeout=2.0))

    @app.get("/me", tags=["chat"])
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"username": user.username}

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: Room, who: WSUser) -> None:
        name = who.user.username
        # A random client id (the default): one user may be in several tabs and rooms.
        async with manager.connect(
            websocket, rooms=[room], subprotocol=who.subprotocol, user_id=who.claims.sub
        ) as conn:
            await manager.send(conn.id, {"type": "welcome", "room": room, "user": name})
            await manager.broadcast(
                {"type": "joined", "room": room, "user": name, "at": now()},
                room=room,
                exclude=[conn.id],
            )
            async for message in manager.iter_json(conn):
                text = chat_text(message)
                if text is None:
                    await manager.send(
                        conn.id, error_frame(f'Send {{"text": "..."}}, 1 to {MAX_TEXT} characters')
                    )
                    continue
                await manager.broadcast(
                    {"type": "message", "room": room, "user": name, "text": text, "at": now()},
                    room=room,
                )
        # The client has left, and the manager has already removed it from the room.
        await manager.broadcast(
            {"type": "left", "room": room, "user": name, "at": now()}, room=room
        )

    return app


app = create_app(redis_url=os.environ.get("REDIS_URL") or None)
