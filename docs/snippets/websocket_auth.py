import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, WebSocket

from fastkit import setup
from fastkit.auth import JWTAuth, TokenClaims, TokenService
from fastkit.websocket import ConnectionManager, WebSocketAuth, websocket_token

logger = logging.getLogger(__name__)

# Every worker needs the same secret, at least 32 bytes: secrets.token_hex(32) makes one.
secret = os.environ.get("JWT_SECRET")
if not secret:  # never a fixed fallback: whoever reads it could make tokens
    secret = secrets.token_hex(32)
    logger.warning(
        "JWT_SECRET is not set: using a random secret. Tokens stop working at restart "
        "and other workers refuse them; set JWT_SECRET (at least 32 bytes) in production."
    )
tokens = TokenService(secret=secret)
USERS = {"1": "alice", "2": "bob"}


def load_user(claims: TokenClaims) -> str | None:
    return USERS.get(claims.sub)


auth = JWTAuth(tokens, user_loader=load_user)
CurrentUser = Annotated[str, Depends(auth.current_user)]
WSUser = Annotated[WebSocketAuth, Depends(websocket_token(auth))]
manager = ConnectionManager()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await manager.start()
    yield
    await manager.stop()


app = FastAPI(lifespan=lifespan)
setup(app)


@app.websocket("/ws")
async def notifications(websocket: WebSocket, who: WSUser) -> None:
    # The client id is the user id, so `manager.send("2", ...)` reaches bob.
    async with manager.connect(
        websocket, client_id=who.claims.sub, subprotocol=who.subprotocol
    ) as conn:
        await manager.send(conn.id, {"type": "hello", "user": who.user})
        async for _ in manager.iter_json(conn):
            pass  # this socket only receives


@app.post("/users/{user_id}/poke", status_code=202)
async def poke(user_id: str, user: CurrentUser) -> dict[str, bool]:
    await manager.send(user_id, {"type": "poke", "from": user})
    return {"online": user_id in manager.clients()}
