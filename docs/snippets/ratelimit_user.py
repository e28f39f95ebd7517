import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI

from fastkit import setup
from fastkit.auth import JWTAuth, RedisRevocationStore, TokenClaims, TokenService, auth_router
from fastkit.ratelimit import LoginThrottle, RateLimit, jwt_subject
from fastkit.stores import RedisStore

# One Redis for every worker and every block: revoked tokens, rate limits, failed logins.
store = RedisStore(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    prefix=os.environ.get("REDIS_PREFIX", "myapp:"),  # every key of this app under it
)
tokens = TokenService(secret=os.environ.get("JWT_SECRET") or secrets.token_hex(32))
auth = JWTAuth(
    tokens,
    user_loader=lambda claims: {"id": claims.sub},
    revocation=RedisRevocationStore(store=store),
)

# Per user (the token's subject), whichever address they come from; requests without a
# valid token spend their address's budget instead.
writes = RateLimit("10/second;1000/hour", key=jwt_subject(auth), store=store, name="writes")


def authenticate(username: str, password: str) -> dict[str, str] | None:
    return {"id": username} if password == "secret" else None  # check a real hash here


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await store.aclose()


app = FastAPI(lifespan=lifespan)
setup(app)
app.include_router(
    auth_router(
        auth,
        authenticate=authenticate,
        subject=lambda user: user["id"],
        login_throttle=LoginThrottle(store=store),  # failed logins, shared by the workers
    )
)


@app.post("/notes", dependencies=[Depends(writes)])
async def create_note(
    text: str, claims: Annotated[TokenClaims, Depends(auth.claims)]
) -> dict[str, str]:
    return {"author": claims.sub, "text": text}
