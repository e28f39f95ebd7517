import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastkit import setup
from fastkit.auth import JWTAuth, RedisRevocationStore, TokenClaims, TokenService, auth_router

# The same secret in every worker.
tokens = TokenService(
    secret=os.environ.get("JWT_SECRET", "dev-only-secret-change-me-0123456789abcdef")
)
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
