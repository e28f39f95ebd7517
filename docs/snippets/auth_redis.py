import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastkit import setup
from fastkit.auth import JWTAuth, RedisRevocationStore, TokenClaims, TokenService, auth_router

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
# Every worker sees every logout and every rotated refresh token.
revocation = RedisRevocationStore(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def load_user(claims: TokenClaims) -> dict[str, str]:
    return {"id": claims.sub}


auth = JWTAuth(tokens, user_loader=load_user, revocation=revocation)


def authenticate(username: str, password: str) -> dict[str, str] | None:
    return {"id": username} if password == "secret" else None  # check a real hash here


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await revocation.aclose()


app = FastAPI(lifespan=lifespan)
setup(app)
app.include_router(auth_router(auth, authenticate=authenticate, subject=lambda user: user["id"]))
