import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI

from fastkit import setup
from fastkit.auth import JWTAuth, PasswordHasher, TokenClaims, TokenService, auth_router

logger = logging.getLogger(__name__)

# argon2's defaults (64 MiB, 3 passes) in production; these small costs keep the demo quick.
hasher = PasswordHasher(argon2__time_cost=1, argon2__memory_cost=1024)

# Every worker needs the same secret, at least 32 bytes: secrets.token_hex(32) makes one.
secret = os.environ.get("JWT_SECRET")
if not secret:  # never a fixed fallback: whoever reads it could make tokens
    secret = secrets.token_hex(32)
    logger.warning(
        "JWT_SECRET is not set: using a random secret. Tokens stop working at restart "
        "and other workers refuse them; set JWT_SECRET (at least 32 bytes) in production."
    )
tokens = TokenService(secret=secret, issuer="fastkit-demo")


@dataclass
class User:
    id: int
    username: str
    password_hash: str
    scopes: list[str] = field(default_factory=list)
    active: bool = True


USERS = {
    "alice": User(1, "alice", hasher.hash("wonderland"), ["items:read", "items:write"]),
    "bob": User(2, "bob", hasher.hash("builder"), ["items:read"]),
    "carol": User(3, "carol", hasher.hash("christmas"), active=False),
}


async def authenticate(username: str, password: str) -> User | None:
    user = USERS.get(username)
    if user is None:
        await hasher.adummy_verify()  # as slow as a wrong password: no user enumeration
        return None
    matches, new_hash = await hasher.averify_and_update(password, user.password_hash)
    if not matches or not user.active:  # is_active is not checked at login
        return None
    if new_hash is not None:  # an old bcrypt hash: store its argon2 replacement
        user.password_hash = new_hash
    return user


def load_user(claims: TokenClaims) -> User | None:
    return next((u for u in USERS.values() if str(u.id) == claims.sub), None)


auth = JWTAuth(
    tokens,
    user_loader=load_user,
    scopes={"items:read": "Read items", "items:write": "Create and edit items"},
    is_active=lambda user: user.active,
)
CurrentUser = Annotated[User, Depends(auth.current_user)]
Writer = Annotated[User, auth.require_scopes("items:write")]

app = FastAPI()
setup(app)
app.include_router(auth_router(auth, authenticate=authenticate, user_scopes=lambda u: u.scopes))


@app.get("/me")
async def me(user: CurrentUser) -> dict[str, str]:
    return {"username": user.username}


@app.post("/items", status_code=201)
async def create_item(user: Writer) -> dict[str, str]:
    return {"created_by": user.username}


@app.get("/greeting")
async def greeting(user: Annotated[User | None, Depends(auth.optional_user)]) -> str:
    return f"Hello, {user.username}" if user else "Hello, guest"
