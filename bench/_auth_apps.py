"""The apps that ``bench/auth.py`` compares.

Login under load (served by uvicorn through ``--factory``), each with ``GET /health``:

- ``fastkit_login``: ``auth_router`` at ``/auth/token`` with an async ``authenticate`` that
  awaits ``PasswordHasher().averify`` (argon2 with fastkit's defaults, in worker threads), and
  ``adummy_verify()`` for unknown users, as the docs say (``fastkit_authenticate``);
  ``fastkit_login_long`` is the same with ``max_password_length=8192``, so that a password
  over passlib's 4,096 bytes reaches the hasher (the timing part);
- ``seed_login``: the seed projects' ``@app.post("/token")`` calling passlib's
  ``CryptContext(schemes=["bcrypt"]).verify`` (cost 12) right inside the ``async def``, so
  every hash blocks the event loop.

Auth dependency, in-process (``bench/_asgi.py``), each with ``GET /me``:

- ``fastkit_me``: ``Depends(auth.current_user)`` with a dict ``user_loader``;
- ``baseline_me``: ``jwt.decode(token, SECRET, algorithms=["HS256"])`` on the
  ``Authorization`` header and a dict lookup, by hand.
- ``open_me``: no auth, the reference the two auth costs are measured from.

Every app has one user, whose password hash is computed once when the app is built.
"""

# No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm
from passlib.context import CryptContext

from fastkit import install_exception_handlers
from fastkit.auth import JWTAuth, PasswordHasher, TokenClaims, TokenService, auth_router

__all__ = [
    "BCRYPT_ROUNDS",
    "FASTKIT_TOKEN_PATH",
    "HEALTH",
    "LONG_MAX_PASSWORD",
    "ME",
    "PASSWORD",
    "SECRET",
    "SEED_TOKEN_PATH",
    "USERNAME",
    "User",
    "baseline_me",
    "fastkit_authenticate",
    "fastkit_login",
    "fastkit_login_long",
    "fastkit_me",
    "me_token",
    "open_me",
    "seed_login",
]

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"  # >= 32 bytes, as TokenService asks
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
USER_ID = "1"
BCRYPT_ROUNDS = 12  # what the seed projects use (passlib's default for bcrypt)
HEALTH = {"status": "ok"}
ME = {"id": USER_ID, "username": USERNAME}
FASTKIT_TOKEN_PATH = "/auth/token"
SEED_TOKEN_PATH = "/token"
LONG_MAX_PASSWORD = 8192  # fastkit_login_long's max_password_length (auth_router's is 1,024)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    hashed_password: str


def _add_health(app: FastAPI) -> None:
    @app.get("/health")
    async def health():  # type: ignore[no-untyped-def]
        return {"status": "ok"}


# --- login under load ----------------------------------------------------------------------


def fastkit_authenticate(
    hasher: PasswordHasher,
) -> tuple[User, Callable[[str, str], Awaitable[User | None]]]:
    """The one user (hashed here) and its ``authenticate``, as the docs write it.

    A wrong password and an unknown user each cost one verification.
    """
    user = User(USER_ID, USERNAME, hasher.hash(PASSWORD))
    by_name = {user.username: user}

    async def authenticate(username: str, password: str) -> User | None:
        found = by_name.get(username)
        if found is None:
            await hasher.adummy_verify()  # as slow as a wrong password
            return None
        return found if await hasher.averify(password, found.hashed_password) else None

    return user, authenticate


def fastkit_login(max_password_length: int = 1024) -> FastAPI:
    """``auth_router`` with ``await hasher.averify(...)``: hashing off the event loop."""
    hasher = PasswordHasher()  # argon2 first, default settings
    user, authenticate = fastkit_authenticate(hasher)
    tokens = TokenService(secret=SECRET)
    auth = JWTAuth(tokens, user_loader=lambda claims: user if claims.sub == user.id else None)

    app = FastAPI()
    install_exception_handlers(app)  # the router's errors (400 invalid_grant, 422) rendered
    _add_health(app)
    app.include_router(
        auth_router(auth, authenticate=authenticate, max_password_length=max_password_length)
    )
    return app


def fastkit_login_long() -> FastAPI:
    """`fastkit_login` taking passwords up to 8,192 characters to ``authenticate``."""
    return fastkit_login(max_password_length=LONG_MAX_PASSWORD)


def seed_login() -> FastAPI:
    """The seed projects' login: a blocking bcrypt verify inside ``async def``."""
    pwd_context = CryptContext(schemes=["bcrypt"], deprecated="auto", bcrypt__rounds=BCRYPT_ROUNDS)
    fake_users_db = {
        USERNAME: {"username": USERNAME, "hashed_password": pwd_context.hash(PASSWORD)}
    }

    def create_access_token(data: dict[str, Any]) -> str:
        to_encode = dict(data)
        to_encode["exp"] = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=15)
        return jwt.encode(to_encode, SECRET, algorithm="HS256")

    app = FastAPI()
    _add_health(app)

    @app.post("/token")
    async def login(form_data: OAuth2PasswordRequestForm = Depends()):  # type: ignore[no-untyped-def]
        user = fake_users_db.get(form_data.username)
        if not user or not pwd_context.verify(form_data.password, user["hashed_password"]):
            raise HTTPException(
                status_code=401,
                detail="Incorrect username or password",
                headers={"WWW-Authenticate": "Bearer"},
            )
        access_token = create_access_token(data={"sub": user["username"]})
        return {"access_token": access_token, "token_type": "bearer"}

    return app


# --- auth dependency ---------------------------------------------------------------------

_USERS = {USER_ID: User(USER_ID, USERNAME, "-")}  # no password needed to read /me


def _tokens() -> TokenService:
    return TokenService(secret=SECRET, access_ttl=dt.timedelta(hours=2))


def me_token() -> str:
    """An access token both ``/me`` apps accept (HS256, ``sub`` = the user's id)."""
    return _tokens().create_access_token(USER_ID)


def fastkit_me() -> FastAPI:
    """``GET /me`` with ``Depends(auth.current_user)`` and an async dict ``user_loader``.

    Async, as a loader reading an async database is; a sync loader runs in the threadpool
    (so a blocking query cannot stall the loop), which costs a thread hand-off per request.
    """

    async def load(claims: TokenClaims) -> User | None:
        return _USERS.get(claims.sub)

    auth: JWTAuth[User] = JWTAuth(_tokens(), user_loader=load)

    app = FastAPI()
    install_exception_handlers(app)

    # No return annotation, as in bench/_apps.py: no response model on either side.
    @app.get("/me")
    async def me(user: Annotated[User, Depends(auth.current_user)]):  # type: ignore[no-untyped-def]
        return {"id": user.id, "username": user.username}

    return app


def baseline_me() -> FastAPI:
    """``GET /me`` decoding the bearer token by hand: ``jwt.decode`` + a dict lookup."""
    app = FastAPI()
    install_exception_handlers(app)  # the same error layer as fastkit_me, so only auth differs

    @app.get("/me")
    async def me(request: Request):  # type: ignore[no-untyped-def]
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
        try:
            payload = jwt.decode(token, SECRET, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            raise HTTPException(
                401, "Invalid token", headers={"WWW-Authenticate": "Bearer"}
            ) from None
        sub = payload.get("sub")
        user = _USERS.get(sub) if isinstance(sub, str) else None
        if user is None:
            raise HTTPException(401, "Invalid token", headers={"WWW-Authenticate": "Bearer"})
        return {"id": user.id, "username": user.username}

    return app


def open_me() -> FastAPI:
    """``GET /me`` with no auth at all: the reference both auth costs are measured from."""
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/me")
    async def me():  # type: ignore[no-untyped-def]
        user = _USERS[USER_ID]
        return {"id": user.id, "username": user.username}

    return app
